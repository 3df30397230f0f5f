/* The runs overview: scheduled, in queue, started and last completed runs,
 * refreshed every second from /dashboard/overview.json. */
"use strict";

(function () {
  const JR = window.JobRunner;
  const { h } = JR;
  const STATES = ["scheduled", "in_queue", "started", "last_completed"];
  const EMPTY = {
    scheduled: "Nothing scheduled.",
    in_queue: "No run is waiting for its worker.",
    started: "Nothing is running.",
    last_completed: "No run has completed yet.",
  };

  const titleInput = document.getElementById("filter-title");
  const stateSelect = document.getElementById("filter-state");
  const params = new URLSearchParams(location.search);
  titleInput.value = params.get("title") || "";
  if (STATES.includes(params.get("state"))) stateSelect.value = params.get("state");

  let project = "";

  function jobLink(run) {
    return h("a", { href: `/jobs/${run.job_id}`, class: "job-title" }, run.job_title);
  }

  function runLink(run) {
    return h("a", { href: `/runs/${run.id}`, class: "run-id", "aria-label": `Run ${run.id}` }, `#${run.id}`);
  }

  function projectLabel(run) {
    if (project) return null;
    const title = JR.projectTitle(run.project_id);
    return title ? h("span", { class: "project-label" }, title) : null;
  }

  function meta(...items) {
    return h("span", { class: "meta" }, items.filter(Boolean).map((item) => h("span", null, item)));
  }

  function manualTag(run) {
    return run.is_manual ? h("span", { class: "tag" }, "manual") : null;
  }

  const ROWS = {
    scheduled(run) {
      const due = Date.parse(run.schedule_dts) <= JR.now();
      // A held run is not late: nothing takes it until its job is enabled.
      const dueClass = due ? (run.held ? "held" : "due") : null;
      return [
        h("span", { class: "row-main" }, jobLink(run), manualTag(run), JR.heldTag(run), projectLabel(run)),
        meta(
          h("span", { class: dueClass }, due ? "due since " : "at ", JR.timeElement(run.schedule_dts)),
          JR.relative(run.schedule_dts),
          run.worker_title ? `on ${run.worker_title}` : null
        ),
        runLink(run),
      ];
    },
    in_queue(run) {
      return [
        h("span", { class: "row-main" }, jobLink(run), manualTag(run), projectLabel(run)),
        meta(`on ${run.worker_title || "?"}`, h("span", null, "queued ", JR.timeElement(run.enqueue_dts))),
        runLink(run),
      ];
    },
    started(run) {
      return [
        h("span", { class: "row-main" }, jobLink(run), manualTag(run), projectLabel(run)),
        meta(
          `on ${run.worker_title || "?"}`,
          run.pid ? `pid ${run.pid}` : null,
          h("span", null, "since ", JR.timeElement(run.start_dts)),
          h("strong", null, JR.elapsedElement(run.start_dts))
        ),
        runLink(run),
      ];
    },
    last_completed(run) {
      const duration = JR.durationOf(run);
      return [
        h("span", { class: "row-main" }, JR.stateBadge(run), jobLink(run), manualTag(run), projectLabel(run)),
        meta(
          h("span", null, "finished ", JR.timeElement(run.return_dts)),
          duration === null ? null : `took ${JR.formatDuration(duration)}`,
          run.worker_title ? `on ${run.worker_title}` : null
        ),
        runLink(run),
      ];
    },
  };

  function render(data) {
    const filter = stateSelect.value;
    for (const state of STATES) {
      const section = document.getElementById(`section-${state}`);
      section.hidden = Boolean(filter) && filter !== state;
      const { total, objects } = data.sections[state];
      const count = section.querySelector("[data-count]");
      count.textContent = objects.length < total ? `${objects.length} of ${total}` : String(total);
      const list = section.querySelector("[data-runs]");
      // Relative words ("due since") and day changes depend on the clock too.
      const key = JSON.stringify([objects, project, Math.floor(JR.now() / 60000)]);
      JR.replaceIfChanged(list, key, () => {
        if (!objects.length) return h("li", { class: "placeholder" }, EMPTY[state]);
        return objects.map((run) =>
          h(
            "li",
            {
              class: `run-row run-${JR.stateOf(run)}${run.held ? " run-held" : ""}`,
              dataset: { runId: String(run.id), jobId: String(run.job_id) },
            },
            ROWS[state](run)
          )
        );
      });
    }
  }

  let lastData = null;
  let ticks = 0;

  /** A banner for each enabled pool the user sees that has no responsive
   * worker: its due runs wait for nobody. */
  async function refreshPools() {
    const data = await JR.get("/dashboard/workers.json");
    const stranded = data.pools.filter((pool) => pool.enqueue_is_enabled && pool.responsive_workers === 0);
    const banner = document.getElementById("pool-banner");
    banner.hidden = !stranded.length;
    JR.replaceIfChanged(banner, JSON.stringify(stranded.map((p) => [p.id, p.title, p.workers.length])), () => [
      h("strong", null, stranded.length === 1 ? "A worker pool has no responsive worker:" : "Worker pools without a responsive worker:"),
      h(
        "ul",
        null,
        stranded.map((pool) =>
          h("li", { dataset: { poolId: String(pool.id) } }, pool.title, " ",
            h("span", { class: "muted" }, pool.workers.length ? `(${pool.workers.length} worker${pool.workers.length === 1 ? "" : "s"}, none answering)` : "(no worker)"))
        )
      ),
      h("span", null, "Their runs wait until a worker answers. ", h("a", { href: "/workers" }, "See the workers")),
    ]);
  }

  async function refresh() {
    const url = JR.query("/dashboard/overview.json", {
      project: project || "all",
      title: titleInput.value.trim(),
    });
    const data = await JR.get(url);
    JR.syncClock(data.now);
    lastData = data;
    render(data);
    // Worker health changes on the ping's scale, not the second's.
    if (ticks % 10 === 0) await refreshPools();
    ticks += 1;
  }

  const live = new JR.Live(refresh, 1000);

  JR.initProjectSelect((value) => {
    project = value;
    live.poke();
  });
  project = JR.currentProject();

  titleInput.addEventListener(
    "input",
    JR.debounce(() => {
      JR.setUrlParam("title", titleInput.value.trim());
      live.poke();
    }, 250)
  );
  stateSelect.addEventListener("change", () => {
    JR.setUrlParam("state", stateSelect.value);
    if (lastData) render(lastData);
  });
  document.getElementById("run-filters").addEventListener("submit", (event) => event.preventDefault());

  live.start();
})();
