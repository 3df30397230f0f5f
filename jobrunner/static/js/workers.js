/* The workers of the pools the user sees: health, running runs, pools; for
 * admins a button to disable or enable each (a PATCH of the REST API). */
"use strict";

(function () {
  const JR = window.JobRunner;
  const { h } = JR;

  const main = document.getElementById("main");
  const canToggle = main.dataset.canToggle === "true";
  const tbody = document.querySelector("#workers-table tbody");
  const columns = canToggle ? 7 : 6;
  let lastData = null;

  function health(worker) {
    if (!worker.enqueue_is_enabled) return h("span", { class: "health health-off", dataset: { health: "disabled" } }, "disabled");
    if (worker.responsive) return h("span", { class: "health health-ok", dataset: { health: "responsive" } }, "responsive");
    return h("span", { class: "health health-bad", dataset: { health: "unresponsive" } }, "unresponsive");
  }

  function running(worker) {
    if (!worker.running.length) return h("span", { class: "muted" }, "—");
    return h(
      "ul",
      { class: "worker-runs" },
      worker.running.map((run) =>
        h("li", null, h("a", { href: `/runs/${run.id}` }, `#${run.id}`), " ", h("a", { href: `/jobs/${run.job_id}` }, run.job_title),
          " ", h("span", { class: "muted" }, JR.elapsedElement(run.start_dts)))
      )
    );
  }

  function toggleButton(worker) {
    const button = h(
      "button",
      { type: "button", class: "button", dataset: { workerId: String(worker.id), action: "toggle-worker" } },
      worker.enqueue_is_enabled ? "Disable" : "Enable"
    );
    button.addEventListener("click", () =>
      JR.act(button, async () => {
        const enable = !worker.enqueue_is_enabled;
        await JR.patch(worker.resource_uri, { enqueue_is_enabled: enable });
        JR.notify(
          "ok",
          enable
            ? `${worker.title} is enabled: it claims runs again.`
            : `${worker.title} is disabled: it claims no new runs; runs it has started finish.`
        );
        live.poke();
      })
    );
    return button;
  }

  function render(data) {
    const rule = document.getElementById("workers-rule");
    rule.textContent = `A worker is responsive while its last ping is at most ${JR.formatDuration(
      data.unresponsive_after_seconds * 1000
    )} old (the scheduler's rule); a disabled worker claims nothing.`;
    const stranded = data.pools.filter((pool) => pool.enqueue_is_enabled && pool.responsive_workers === 0);
    const banner = document.getElementById("pool-banner");
    banner.hidden = !stranded.length;
    JR.replaceIfChanged(banner, JSON.stringify(stranded.map((p) => p.id)), () => [
      h("strong", null, "No responsive worker in: "),
      h("span", null, stranded.map((pool, index) => [index ? ", " : "", pool.title])),
      ". Their runs wait until a worker answers.",
    ]);
    const key = JSON.stringify([data.workers, data.pools, Math.floor(JR.now() / 60000)]);
    JR.replaceIfChanged(tbody, key, () => {
      if (!data.workers.length) {
        return h("tr", { class: "placeholder" }, h("td", { colspan: String(columns) }, "No worker in the pools you see."));
      }
      return data.workers.map((worker) =>
        h(
          "tr",
          { dataset: { workerId: String(worker.id) } },
          h("td", { "data-label": "Worker" }, h("strong", null, worker.title), h("span", { class: "subtle" }, `${worker.concurrent_jobs} at once`)),
          h("td", { "data-label": "Health" }, health(worker)),
          h("td", { "data-label": "Last ping" }, JR.timeElement(worker.ping_response_dts),
            worker.ping_response_dts ? h("span", { class: "subtle" }, JR.relative(worker.ping_response_dts)) : h("span", { class: "subtle" }, "never")),
          h("td", { "data-label": "Version" }, worker.worker_version || h("span", { class: "muted" }, "—")),
          h("td", { "data-label": "Running" }, running(worker)),
          h("td", { "data-label": "Pools" }, worker.pools.map((pool) => pool.title).join(", ") || h("span", { class: "muted" }, "—")),
          canToggle ? h("td", { "data-label": "" }, toggleButton(worker)) : null
        )
      );
    });
  }

  async function refresh() {
    const data = await JR.get("/dashboard/workers.json");
    JR.syncClock(data.now);
    lastData = data;
    render(lastData);
  }

  const live = new JR.Live(refresh, 2000);
  JR.initProjectSelect(null);
  live.start();
})();
