/* One run: its times, worker and result, and its log growing while it runs. */
"use strict";

(function () {
  const JR = window.JobRunner;
  const { h } = JR;

  const main = document.getElementById("main");
  const runId = Number(main.dataset.runId);
  const runUri = `/api/v1/run/${runId}/`;
  const logNode = document.getElementById("run-log");
  const workers = new Map();
  let run = null;
  let killRequests = [];
  let logDone = false;
  let readsAfterReturn = 0;

  async function workerTitle(uri) {
    if (!uri) return null;
    if (!workers.has(uri)) {
      const worker = await JR.getOrNull(uri);
      workers.set(uri, worker ? worker.title : `worker ${JR.idOf(uri)}`);
    }
    return workers.get(uri);
  }

  async function refresh() {
    // The REST form plus `killed` (the dashboard's own endpoint).
    run = await JR.get(`/dashboard/runs/${runId}.json`);
    const finished = Boolean(run.return_dts);
    const [kills, log] = await Promise.all([
      run.start_dts ? JR.get(JR.query("/api/v1/kill_request/", { run: runId, order_by: "schedule_dts" })) : null,
      // A finished run's log is read a few times after the return, then left be.
      run.run_log && !logDone ? JR.get(run.run_log) : null,
      workerTitle(run.worker),
    ]);
    if (kills) killRequests = kills.objects;
    if (log) showLog(log.content || "");
    else if (!run.run_log) showLog(null);
    // The last lines may be written just after the return: read a few more times.
    if (finished) readsAfterReturn += 1;
    if (readsAfterReturn >= 5) logDone = true;
    render();
  }

  function showLog(content) {
    const info = document.getElementById("log-info");
    if (content === null) {
      logNode.dataset.empty = "true";
      const waiting = run.return_dts ? "This run left no log." : "No output yet.";
      if (logNode.textContent !== waiting) logNode.textContent = waiting;
      info.textContent = "";
      return;
    }
    delete logNode.dataset.empty;
    if (logNode.textContent === content) return;
    // Follow the end of the log, unless the reader scrolled up to read.
    const atEnd = logNode.scrollHeight - logNode.scrollTop - logNode.clientHeight < 24;
    logNode.textContent = content;
    if (atEnd) logNode.scrollTop = logNode.scrollHeight;
    const size = new Blob([content]).size;
    const lines = content ? content.split("\n").length - (content.endsWith("\n") ? 1 : 0) : 0;
    info.textContent = `${lines} line${lines === 1 ? "" : "s"}, ${size < 1024 ? `${size} bytes` : `${(size / 1024).toFixed(1)} kB`}${run.return_dts ? "" : " · growing while the run goes on"}`;
  }

  function detailRows() {
    const duration = JR.durationOf(run);
    const state = JR.stateOf(run);
    let durationValue = duration === null ? "—" : JR.formatDuration(duration);
    if (state === "started") durationValue = h("span", null, JR.elapsedElement(run.start_dts), " so far");
    let result = "—";
    if (run.return_dts) {
      result = run.return_success ? "success" : "failure";
      if (state === "killed") result = "failure: killed on request";
      if (state === "timed_out") result = "failure: timed out";
    }
    // In pairs: two to a row where the page is wide.
    const rows = [
      ["Job", h("a", { href: `/jobs/${JR.idOf(run.job)}` }, document.getElementById("run-job-link").textContent)],
      ["Result", h("span", { id: "run-result", class: run.return_dts ? (run.return_success ? "good" : "bad") : null }, result)],
      ["Worker", run.worker ? workers.get(run.worker) || "" : "—"],
      ["PID", run.pid === null ? "—" : String(run.pid)],
      ["Scheduled", JR.timeElement(run.schedule_dts)],
      ["In queue since", JR.timeElement(run.enqueue_dts)],
      ["Started", JR.timeElement(run.start_dts)],
      ["Returned", JR.timeElement(run.return_dts)],
      [state === "started" ? "Running for" : "Duration", durationValue],
      ["Manual", run.is_manual ? "yes, scheduled by hand" : "no"],
      ["Children", run.schedule_children ? "scheduled when it completes" : "not scheduled"],
    ];
    if (run.schedule_id !== run.id) rows.push(["Schedule", `shared with the runs of schedule ${run.schedule_id}`]);
    return rows.flatMap(([term, value]) => [h("dt", null, term), h("dd", null, value)]);
  }

  function renderKills() {
    const panel = document.getElementById("kill-panel");
    panel.hidden = !killRequests.length;
    JR.replaceIfChanged(document.getElementById("kill-requests"), JSON.stringify(killRequests), () =>
      killRequests.map((kill) =>
        h(
          "li",
          { dataset: { killRequestId: String(kill.id) } },
          "Requested ",
          JR.timeElement(kill.schedule_dts),
          kill.enqueue_dts ? [", picked up ", JR.timeElement(kill.enqueue_dts)] : ", waiting for the worker",
          kill.execute_dts ? [", executed ", JR.timeElement(kill.execute_dts)] : null
        )
      )
    );
  }

  function render() {
    const state = JR.stateOf(run);
    const badge = document.getElementById("run-state");
    const label = JR.stateBadge(run).textContent;
    if (badge.textContent !== label) badge.textContent = label;
    badge.className = `state-badge state-${state}`;
    badge.dataset.state = state;
    JR.replaceIfChanged(
      document.getElementById("run-details"),
      JSON.stringify([run, [...workers], Math.floor(JR.now() / 60000)]),
      detailRows
    );
    renderKills();
    const kill = document.getElementById("kill-run");
    if (kill) {
      const pending = killRequests.some((k) => !k.execute_dts);
      kill.hidden = state !== "started";
      kill.disabled = pending;
      kill.textContent = pending ? "Kill requested…" : "Kill run";
    }
  }

  const live = new JR.Live(refresh, 1000);

  const killButton = document.getElementById("kill-run");
  if (killButton) {
    killButton.addEventListener("click", () => {
      const jobTitle = document.getElementById("run-job-link").textContent;
      if (!window.confirm(`Kill run #${runId} of ${jobTitle}? Its worker ends the whole process group.`)) return;
      JR.act(killButton, async () => {
        await JR.post("/api/v1/kill_request/", { run: runUri });
        JR.notify("ok", `Kill requested: the worker of run #${runId} will end it.`);
        live.poke();
      });
    });
  }

  JR.initProjectSelect(null, main.dataset.projectId);
  live.start();
})();
