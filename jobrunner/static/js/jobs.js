/* The job list, read from the REST API and refreshed every two seconds. */
"use strict";

(function () {
  const JR = window.JobRunner;
  const { h } = JR;

  const tbody = document.querySelector("#jobs-table tbody");
  const titleInput = document.getElementById("filter-title");
  titleInput.value = new URLSearchParams(location.search).get("title") || "";
  let project = "";
  let lastData = null;

  function byUri(objects) {
    return new Map(objects.map((o) => [o.resource_uri, o]));
  }

  /** The first run per job of a list (the list's order decides which). */
  function firstPerJob(runs) {
    const result = new Map();
    for (const run of runs) if (!result.has(run.job)) result.set(run.job, run);
    return result;
  }

  async function load() {
    const scope = { project_id: project, limit: 1000 };
    const [jobs, templates, pools, scheduled, started, completed] = await Promise.all([
      JR.getAll(JR.query("/api/v1/job/", { ...scope, order_by: "title" })),
      JR.getAll(JR.query("/api/v1/job_template/", scope)),
      JR.getAll(JR.query("/api/v1/worker_pool/", scope)),
      JR.getAll(JR.query("/api/v1/run/", { ...scope, state: "scheduled", order_by: "schedule_dts" })),
      JR.getAll(JR.query("/api/v1/run/", { ...scope, state: "started" })),
      JR.getAll(JR.query("/api/v1/run/", { ...scope, state: "last_completed", order_by: "-return_dts" })),
    ]);
    return {
      jobs,
      templates: byUri(templates),
      pools: byUri(pools),
      next: firstPerJob(scheduled),
      running: firstPerJob(started),
      last: firstPerJob(completed),
    };
  }

  function row(job, data) {
    const template = data.templates.get(job.job_template);
    const pool = data.pools.get(job.worker_pool);
    const next = data.next.get(job.resource_uri);
    const running = data.running.get(job.resource_uri);
    const last = data.last.get(job.resource_uri);
    const projectId = template ? JR.idOf(template.project) : null;
    return h(
      "tr",
      { dataset: { jobId: String(job.id) } },
      h(
        "td",
        { "data-label": "Job" },
        h("a", { href: `/jobs/${job.id}`, class: "job-title" }, job.title),
        job.description ? h("span", { class: "subtle" }, job.description) : null
      ),
      h(
        "td",
        { "data-label": "Project" },
        JR.projectTitle(projectId),
        template ? h("span", { class: "subtle" }, template.title) : null
      ),
      h("td", { "data-label": "Pool" }, pool ? pool.title : ""),
      h("td", { "data-label": "Schedule" }, JR.scheduleInWords(job, next ? next.schedule_dts : null)),
      h(
        "td",
        { "data-label": "State" },
        job.enqueue_is_enabled
          ? h("span", { class: "tag tag-ok" }, "enabled")
          : h("span", { class: "tag tag-off" }, "disabled"),
        running ? h("a", { href: `/runs/${running.id}`, class: "tag tag-running" }, "running") : null
      ),
      h("td", { class: "num", "data-label": "Fails" }, job.fail_times ? h("strong", { class: "bad" }, job.fail_times) : "0"),
      h(
        "td",
        { "data-label": "Last result" },
        last ? h("a", { href: `/runs/${last.id}` }, JR.stateBadge(last), " ", JR.timeElement(last.return_dts)) : h("span", { class: "muted" }, "—")
      )
    );
  }

  function render() {
    if (!lastData) return;
    const needle = titleInput.value.trim().toLowerCase();
    const jobs = lastData.jobs.filter((job) => !needle || job.title.toLowerCase().includes(needle));
    const key = JSON.stringify([
      jobs,
      needle,
      [...lastData.next.values()].map((r) => [r.id, r.schedule_dts]),
      [...lastData.running.keys()],
      [...lastData.last.values()].map((r) => r.id),
      [...lastData.templates.keys()],
      [...lastData.pools.keys()],
      Math.floor(JR.now() / 60000),
    ]);
    JR.replaceIfChanged(tbody, key, () => {
      if (!jobs.length) {
        const text = lastData.jobs.length ? "No job matches the filter." : "No jobs here yet.";
        return h("tr", { class: "placeholder" }, h("td", { colspan: "7" }, text));
      }
      return jobs.map((job) => row(job, lastData));
    });
  }

  async function refresh() {
    lastData = await load();
    render();
  }

  const live = new JR.Live(refresh, 2000);
  JR.initProjectSelect((value) => {
    project = value;
    live.poke();
  });
  project = JR.currentProject();
  titleInput.addEventListener("input", () => {
    JR.setUrlParam("title", titleInput.value.trim());
    render();
  });
  document.getElementById("job-filters").addEventListener("submit", (event) => event.preventDefault());
  live.start();
})();
