/* One job: details, its chain, the last 100 runs with a duration chart, and
 * the actions its project's admins may take. */
"use strict";

(function () {
  const JR = window.JobRunner;
  const { h } = JR;

  const main = document.getElementById("main");
  const jobId = Number(main.dataset.jobId);
  const projectId = main.dataset.projectId;
  const jobUri = `/api/v1/job/${jobId}/`;

  const state = { job: null, runs: [], next: [], total: 0, template: null, pool: null, projectJobs: [], workers: new Map() };
  let ticks = 0;
  let lastSlowTick = -1;

  // --- loading --------------------------------------------------------------

  async function loadSlow() {
    // What rarely changes: template, pool, the project's jobs (the chain) and
    // the workers' names.
    const job = state.job;
    const [template, pool, projectJobs, workers] = await Promise.all([
      JR.getOrNull(job.job_template),
      JR.getOrNull(job.worker_pool),
      JR.getAll(JR.query("/api/v1/job/", { project_id: projectId, limit: 1000 })),
      JR.getAll(JR.query("/api/v1/worker/", { project_id: projectId, limit: 1000 })),
    ]);
    Object.assign(state, { template, pool, projectJobs });
    state.workers = new Map(workers.map((w) => [w.resource_uri, w.title]));
  }

  async function refresh() {
    // The runs come from the dashboard's own endpoint: waiting runs apart,
    // the others by latest activity, each saying whether it was killed.
    const [job, runs] = await Promise.all([JR.get(jobUri), JR.get(`/dashboard/jobs/${jobId}/runs.json`)]);
    JR.syncClock(runs.now);
    state.job = job;
    state.runs = runs.runs;
    state.next = runs.next;
    state.total = runs.total;
    // Every 15th refresh, or sooner when a run names a worker not seen yet
    // (but not on every refresh: a worker moved out of the project's pools
    // stays unnamed).
    const unknownWorker = state.runs.concat(state.next).some((run) => run.worker && !state.workers.has(run.worker));
    const sinceSlow = ticks - lastSlowTick;
    if (lastSlowTick < 0 || sinceSlow >= 15 || (unknownWorker && sinceSlow >= 3)) {
      await loadSlow();
      lastSlowTick = ticks;
    }
    ticks += 1;
    render();
  }

  // --- rendering ------------------------------------------------------------

  function nextRun() {
    // The waiting runs come soonest first.
    return state.next.length ? state.next[0] : null;
  }

  function yesNo(value) {
    return value ? "yes" : "no";
  }

  function detailRows() {
    const job = state.job;
    const next = nextRun();
    const excludes = JR.excludesInWords(job);
    const rows = [
      ["Template", state.template ? state.template.title : ""],
      ["Worker pool", state.pool ? state.pool.title : ""],
      ["Schedule", JR.scheduleInWords(job, next ? next.schedule_dts : null)],
    ];
    if (excludes.length) rows.push(["Excluded times", excludes.join("; ")]);
    rows.push(
      ["Enqueue", job.enqueue_is_enabled ? "enabled" : "disabled"],
      [
        "Failures in a row",
        job.disable_enqueue_after_fails === null
          ? String(job.fail_times)
          : `${job.fail_times} (more than ${job.disable_enqueue_after_fails} disables the job)`,
      ],
      ["Runs on all workers", yesNo(job.run_on_all_workers)],
      ["Children after a failure", yesNo(job.schedule_children_on_error)],
      ["Notifies", (job.notification_addresses || []).join(", ") || "—"],
      ["Description", job.description || "—"]
    );
    return rows.flatMap(([term, value]) => [h("dt", null, term), h("dd", null, value)]);
  }

  function renderBadges() {
    const job = state.job;
    const running = state.runs.find((run) => JR.stateOf(run) === "started");
    const badges = [
      job.enqueue_is_enabled
        ? h("span", { class: "tag tag-ok", id: "job-enabled-state" }, "enabled")
        : h("span", { class: "tag tag-off", id: "job-enabled-state" }, "disabled"),
      job.fail_times
        ? h("span", { class: "tag tag-bad" }, `${job.fail_times} failure${job.fail_times === 1 ? "" : "s"} in a row`)
        : null,
      running ? h("a", { class: "tag tag-running", href: `/runs/${running.id}` }, "running now") : null,
    ];
    JR.replaceIfChanged(document.getElementById("job-badges"), JSON.stringify([job.enqueue_is_enabled, job.fail_times, running && running.id]), () =>
      badges.filter(Boolean).flatMap((b) => [b, " "])
    );
  }

  function renderChain() {
    const jobs = new Map(state.projectJobs.map((j) => [j.resource_uri, j]));
    jobs.set(state.job.resource_uri, state.job);
    // Up to the top of the chain (a broken or cyclic chain stops where seen).
    let root = state.job;
    const seen = new Set([root.resource_uri]);
    while (root.parent && jobs.has(root.parent) && !seen.has(root.parent)) {
      root = jobs.get(root.parent);
      seen.add(root.resource_uri);
    }
    const drawn = new Set();
    function branch(job) {
      drawn.add(job.resource_uri);
      const label =
        job.id === state.job.id
          ? h("strong", { "aria-current": "true" }, job.title)
          : h("a", { href: `/jobs/${job.id}` }, job.title);
      const children = (job.children || []).filter((uri) => jobs.has(uri) && !drawn.has(uri));
      return h(
        "li",
        null,
        label,
        job.enqueue_is_enabled ? null : h("span", { class: "tag tag-off" }, "disabled"),
        children.length ? h("ul", null, children.map((uri) => branch(jobs.get(uri)))) : null
      );
    }
    const single = !state.job.parent && !(state.job.children || []).length;
    const key = JSON.stringify(state.projectJobs.map((j) => [j.id, j.title, j.parent, j.enqueue_is_enabled]));
    JR.replaceIfChanged(document.getElementById("job-chain"), key, () =>
      single
        ? h("p", { class: "muted" }, "This job has no parent and no children.")
        : h("ul", { class: "chain" }, branch(root))
    );
  }

  const CHART = { height: 180, left: 60, bottom: 22, top: 10, right: 8 };
  const chartNode = document.getElementById("duration-chart");

  function renderChart() {
    const container = chartNode;
    const done = state.runs
      .filter((run) => run.return_dts)
      .sort((a, b) => Date.parse(a.return_dts) - Date.parse(b.return_dts) || a.id - b.id);
    // Drawn at the container's own width, so text is never stretched.
    const width = Math.max(280, Math.round(container.clientWidth || 800));
    const key = JSON.stringify([width, done.map((r) => [r.id, r.start_dts, r.return_dts, r.return_success])]);
    JR.replaceIfChanged(container, key, () => {
      if (!done.length) return h("p", { class: "muted" }, "No completed run yet.");
      const svg = JR.svg;
      const c = { ...CHART, width };
      const plotWidth = c.width - c.left - c.right;
      const plotHeight = c.height - c.top - c.bottom;
      const longest = Math.max(1000, ...done.map((r) => JR.durationOf(r) || 0));
      const slot = plotWidth / Math.max(done.length, 20);
      const barWidth = Math.max(2, slot * 0.72);
      const failures = done.filter((r) => !r.return_success).length;
      const BAR_CLASS = { succeeded: "bar-ok", failed: "bar-bad", killed: "bar-killed", timed_out: "bar-timed_out" };
      const bars = done.map((run, index) => {
        const duration = JR.durationOf(run) || 0;
        const height = Math.max(2, (duration / longest) * plotHeight);
        const x = c.left + index * slot + (slot - barWidth) / 2;
        const y = c.top + plotHeight - height;
        const runState = JR.stateOf(run);
        const label = `Run #${run.id}: ${JR.stateLabel(runState).toLowerCase()}, ${
          JR.durationOf(run) === null ? "did not start" : JR.formatDuration(duration)
        }, ${JR.formatDateTime(run.return_dts)} ${JR.timezone}`;
        return svg(
          "a",
          { href: `/runs/${run.id}`, class: "bar-link" },
          svg("title", null, label),
          svg("rect", {
            x: x.toFixed(1),
            y: y.toFixed(1),
            width: barWidth.toFixed(1),
            height: height.toFixed(1),
            rx: "1.5",
            class: `bar ${BAR_CLASS[runState]}`,
            "data-state": runState,
          })
        );
      });
      const axisY = c.top + plotHeight;
      const chart = svg(
        "svg",
        {
          viewBox: `0 0 ${c.width} ${c.height}`,
          class: "duration-chart",
          role: "img",
          width: c.width,
          height: c.height,
          "aria-label": `Durations of the last ${done.length} completed runs; ${failures} failed; longest ${JR.formatDuration(longest)}`,
        },
        svg("line", { x1: c.left, x2: c.width - c.right, y1: c.top, y2: c.top, class: "grid" }),
        svg("line", { x1: c.left, x2: c.width - c.right, y1: c.top + plotHeight / 2, y2: c.top + plotHeight / 2, class: "grid" }),
        svg("line", { x1: c.left, x2: c.width - c.right, y1: axisY, y2: axisY, class: "axis" }),
        svg("text", { x: c.left - 6, y: c.top + 4, class: "axis-label", "text-anchor": "end" }, JR.formatDuration(longest)),
        svg("text", { x: c.left - 6, y: c.top + plotHeight / 2 + 4, class: "axis-label", "text-anchor": "end" }, JR.formatDuration(longest / 2)),
        svg("text", { x: c.left - 6, y: axisY + 4, class: "axis-label", "text-anchor": "end" }, "0"),
        svg("text", { x: c.left, y: c.height - 4, class: "axis-label" }, JR.formatShort(done[0].return_dts, false)),
        svg("text", { x: c.width - c.right, y: c.height - 4, class: "axis-label", "text-anchor": "end" }, JR.formatShort(done[done.length - 1].return_dts, false)),
        bars
      );
      const killed = done.filter((r) => JR.stateOf(r) === "killed").length;
      const timedOut = done.filter((r) => JR.stateOf(r) === "timed_out").length;
      const notes = [`${failures} failed`];
      if (killed) notes.push(`${killed} of them killed`);
      if (timedOut) notes.push(`${timedOut} timed out`);
      document.getElementById("chart-caption").textContent =
        `the last ${done.length} completed run${done.length === 1 ? "" : "s"}, ${notes.join(", ")} · oldest left`;
      const shown = ["succeeded", "failed", "killed", "timed_out"].filter((s) => done.some((r) => JR.stateOf(r) === s));
      const legend = h(
        "ul",
        { class: "chart-legend", id: "chart-legend" },
        shown.map((s) => h("li", null, h("span", { class: `swatch ${BAR_CLASS[s]}`, "aria-hidden": "true" }), JR.stateLabel(s)))
      );
      return [chart, legend];
    });
  }

  function runRow(run, isNext) {
    const duration = JR.durationOf(run);
    let durationCell = duration === null ? "" : JR.formatDuration(duration);
    if (JR.stateOf(run) === "started") durationCell = JR.elapsedElement(run.start_dts);
    return h(
      "tr",
      { dataset: { runId: String(run.id), next: isNext ? "true" : null }, class: isNext ? "next-run" : null },
      h(
        "td",
        { "data-label": "Run" },
        h("a", { href: `/runs/${run.id}` }, `#${run.id}`),
        isNext ? [" ", h("span", { class: "tag" }, "next")] : null,
        run.is_manual ? [" ", h("span", { class: "tag" }, "manual")] : null
      ),
      h("td", { "data-label": "State" }, JR.stateBadge(run), isNext && run.held ? [" ", JR.heldTag(run)] : null),
      h("td", { "data-label": "Scheduled" }, JR.timeElement(run.schedule_dts)),
      h("td", { "data-label": "Started" }, JR.timeElement(run.start_dts)),
      h("td", { class: "num", "data-label": "Duration" }, durationCell),
      h("td", { "data-label": "Worker" }, run.worker ? state.workers.get(run.worker) || "" : "")
    );
  }

  function renderRuns() {
    const tbody = document.querySelector("#job-runs tbody");
    const key = JSON.stringify([state.next, state.runs, Math.floor(JR.now() / 60000), [...state.workers]]);
    JR.replaceIfChanged(tbody, key, () => {
      if (!state.runs.length && !state.next.length) {
        return h("tr", { class: "placeholder" }, h("td", { colspan: "6" }, "No runs yet."));
      }
      return state.next.map((run) => runRow(run, true)).concat(state.runs.map((run) => runRow(run, false)));
    });
  }

  function renderActions() {
    const toggle = document.getElementById("toggle-job");
    if (toggle) {
      toggle.dataset.enabled = String(state.job.enqueue_is_enabled);
      toggle.textContent = state.job.enqueue_is_enabled ? "Disable job" : "Enable job";
    }
  }

  function render() {
    const job = state.job;
    document.getElementById("job-title").textContent = job.title;
    JR.replaceIfChanged(
      document.getElementById("job-details"),
      JSON.stringify([job, state.template && state.template.title, state.pool && state.pool.title, nextRun(), Math.floor(JR.now() / 60000)]),
      detailRows
    );
    const script = document.getElementById("job-script");
    if (script.textContent !== job.script_content) script.textContent = job.script_content;
    renderBadges();
    renderChain();
    renderChart();
    renderRuns();
    renderActions();
  }

  // --- actions --------------------------------------------------------------

  const live = new JR.Live(refresh, 1000);

  const scheduleButton = document.getElementById("schedule-now");
  if (scheduleButton) {
    scheduleButton.addEventListener("click", () =>
      JR.act(scheduleButton, async () => {
        const withChildren = document.getElementById("schedule-children").checked;
        const run = await JR.post("/api/v1/run/", { job: jobUri, schedule_children: withChildren });
        JR.notify(
          "ok",
          h("a", { href: `/runs/${run.id}` }, `Run #${run.id}`),
          withChildren ? " scheduled, with its children after it." : " scheduled, without its children."
        );
        live.poke();
      })
    );
  }

  const toggleButton = document.getElementById("toggle-job");
  if (toggleButton) {
    toggleButton.addEventListener("click", () =>
      JR.act(toggleButton, async () => {
        const enable = toggleButton.dataset.enabled !== "true";
        const job = await JR.patch(jobUri, { enqueue_is_enabled: enable });
        state.job = job;
        render();
        // The workers' rule: a disabled job's due runs wait, but a run
        // scheduled by hand ignores the switch and still runs.
        JR.notify(
          "ok",
          enable
            ? "The job is enabled: workers pick up its due runs again."
            : "The job is disabled: its scheduled runs wait until it is enabled again. A run scheduled by hand (Schedule now) still runs."
        );
        live.poke();
      })
    );
  }

  if (window.ResizeObserver) {
    new ResizeObserver(JR.debounce(() => state.job && renderChart(), 150)).observe(chartNode);
  }

  JR.initProjectSelect(null, main.dataset.projectId);
  live.start();
})();
