/* Job-Runner dashboard: what every page shares.
 *
 * API strings only ever reach the page as text nodes or attribute values set
 * through the DOM (never innerHTML), so nothing a job's title or log holds is
 * read as markup.
 */
"use strict";

(function () {
  const JR = (window.JobRunner = {});

  JR.timezone = document.body.dataset.timezone || "UTC";

  JR.csrfToken = function () {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  };

  // --- DOM ------------------------------------------------------------------

  function append(node, children) {
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) append(node, child);
      else if (child instanceof Node) node.appendChild(child);
      else node.appendChild(document.createTextNode(String(child)));
    }
    return node;
  }

  function setAttributes(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "onclick") node.addEventListener("click", value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
  }

  /** h("a", {href: "/runs/1"}, "text", child, ...): an element with text children. */
  JR.h = function (tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttributes(node, attrs);
    return append(node, children);
  };

  JR.svg = function (tag, attrs, ...children) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    setAttributes(node, attrs);
    return append(node, children);
  };

  JR.$ = (selector, root) => (root || document).querySelector(selector);
  JR.$$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  /** Replaces a node's children only when the content differs, so a list that
   * did not change keeps its focus, selection and scroll position. */
  JR.replaceIfChanged = function (node, key, build) {
    if (node.dataset.renderKey === key) return false;
    node.dataset.renderKey = key;
    node.replaceChildren(...[].concat(build()));
    return true;
  };

  // --- the API --------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }
  JR.ApiError = ApiError;

  async function request(method, url, body) {
    const headers = { Accept: "application/json" };
    const options = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    if (method !== "GET") headers["X-CSRF-Token"] = JR.csrfToken();
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      throw new ApiError(0, "The server cannot be reached.", null);
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (error) {
      data = null;
    }
    if (response.status === 401) {
      throw new ApiError(401, "Your session has ended; log in again.", data);
    }
    if (!response.ok) {
      const message = (data && data.error) || `The server answered ${response.status}.`;
      throw new ApiError(response.status, message, data);
    }
    if (data === null) throw new ApiError(response.status, "The server's answer was not JSON.", null);
    return data;
  }

  JR.get = (url) => request("GET", url);
  /** For what a page can do without: null when it is gone or out of reach
   * (a pool taken from the project, a worker moved elsewhere). */
  JR.getOrNull = async function (url) {
    try {
      return await request("GET", url);
    } catch (error) {
      if (error.status === 403 || error.status === 404) return null;
      throw error;
    }
  };
  JR.post = (url, body) => request("POST", url, body);
  JR.patch = (url, body) => request("PATCH", url, body);

  /** Every object of a list, following `meta.next` (at most `maxPages` pages). */
  JR.getAll = async function (url, maxPages = 10) {
    const objects = [];
    let next = url;
    for (let page = 0; next && page < maxPages; page += 1) {
      const data = await JR.get(next);
      objects.push(...data.objects);
      next = data.meta.next;
    }
    return objects;
  };

  JR.query = function (path, params) {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== null && value !== undefined && value !== "") search.set(name, value);
    }
    const text = search.toString();
    return text ? `${path}?${text}` : path;
  };

  /** The numeric id at the end of a resource URI (/api/v1/job/3/ -> 3). */
  JR.idOf = function (uri) {
    if (!uri) return null;
    const match = /\/(\d+)\/?$/.exec(uri);
    return match ? Number(match[1]) : null;
  };

  // --- time -----------------------------------------------------------------

  // The difference between the server's clock and this browser's, so elapsed
  // times are right even when the browser's clock is off.
  let clockOffset = 0;
  JR.syncClock = function (serverIso) {
    const server = Date.parse(serverIso);
    if (!Number.isNaN(server)) clockOffset = server - Date.now();
  };
  JR.now = () => Date.now() + clockOffset;

  const partsFormat = new Intl.DateTimeFormat("en-GB", {
    timeZone: JR.timezone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    weekday: "short",
    hourCycle: "h23",
  });
  const monthFormat = new Intl.DateTimeFormat("en-GB", { timeZone: JR.timezone, month: "short" });

  function zoned(ms) {
    const parts = {};
    for (const part of partsFormat.formatToParts(new Date(ms))) parts[part.type] = part.value;
    parts.monthName = monthFormat.format(new Date(ms));
    return parts;
  }

  /** 2024-05-03 14:00:05 in the configured zone. */
  JR.formatDateTime = function (iso) {
    if (!iso) return "";
    const p = zoned(Date.parse(iso));
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
  };

  /** 14:00:05 today, else Fri 3 May 14:00:05 (with the year when not this year). */
  JR.formatShort = function (iso, withSeconds = true) {
    if (!iso) return "";
    const p = zoned(Date.parse(iso));
    const today = zoned(JR.now());
    const clock = withSeconds ? `${p.hour}:${p.minute}:${p.second}` : `${p.hour}:${p.minute}`;
    if (p.year === today.year && p.month === today.month && p.day === today.day) return clock;
    const year = p.year === today.year ? "" : ` ${p.year}`;
    return `${p.weekday} ${Number(p.day)} ${p.monthName}${year} ${clock}`;
  };

  /** A <time> element: short text, the full date and zone on hover. */
  JR.timeElement = function (iso, withSeconds = true) {
    if (!iso) return JR.h("span", { class: "muted" }, "—");
    return JR.h(
      "time",
      { datetime: iso, title: `${JR.formatDateTime(iso)} ${JR.timezone}` },
      JR.formatShort(iso, withSeconds)
    );
  };

  /** 850 ms, 4.2 s, 3 min 05 s, 2 h 04 min, 3 d 2 h */
  JR.formatDuration = function (ms) {
    if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
    ms = Math.max(0, ms);
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const seconds = ms / 1000;
    if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.floor(seconds)} s`;
    const total = Math.floor(seconds);
    const pad = (n) => String(n).padStart(2, "0");
    if (total < 3600) return `${Math.floor(total / 60)} min ${pad(total % 60)} s`;
    if (total < 86400) return `${Math.floor(total / 3600)} h ${pad(Math.floor((total % 3600) / 60))} min`;
    return `${Math.floor(total / 86400)} d ${Math.floor((total % 86400) / 3600)} h`;
  };

  /** "in 9 min", "2 h 05 min ago", to the minute. */
  JR.relative = function (iso) {
    const ms = Date.parse(iso) - JR.now();
    const minutes = Math.round(Math.abs(ms) / 60000);
    if (minutes < 1) return ms > 0 ? "in less than a minute" : "just now";
    const words = JR.formatDuration(minutes * 60000).replace(/ 00 s$/, "");
    return ms > 0 ? `in ${words}` : `${words} ago`;
  };

  JR.durationOf = function (run) {
    if (!run.start_dts || !run.return_dts) return null;
    return Date.parse(run.return_dts) - Date.parse(run.start_dts);
  };

  /** An element whose text counts up from `iso`; tick() keeps it current. */
  JR.elapsedElement = function (iso) {
    const node = JR.h("span", { class: "elapsed", dataset: { since: iso } });
    node.textContent = JR.formatDuration(JR.now() - Date.parse(iso));
    return node;
  };

  function tick() {
    for (const node of JR.$$("[data-since]")) {
      node.textContent = JR.formatDuration(JR.now() - Date.parse(node.dataset.since));
    }
  }
  setInterval(tick, 1000);

  // --- runs -----------------------------------------------------------------

  /** A run's state as the dashboard shows it. A failed run is "killed" when
   * its worker acted on a kill request (the server says so in `killed`) and
   * "timed_out" when `timed_out` is true (a missing field counts as false). */
  JR.stateOf = function (run) {
    if (run.return_dts) {
      if (run.return_success) return "succeeded";
      if (run.timed_out === true) return "timed_out";
      if (run.killed === true) return "killed";
      return "failed";
    }
    if (run.start_dts) return "started";
    if (run.enqueue_dts) return "in_queue";
    return "scheduled";
  };

  /** Completed without success: failed, killed or timed out. */
  JR.isFailure = (run) => Boolean(run.return_dts) && !run.return_success;

  const STATE_LABELS = {
    scheduled: "Scheduled",
    in_queue: "In queue",
    started: "Started",
    succeeded: "Succeeded",
    failed: "Failed",
    killed: "Killed",
    timed_out: "Timed out",
  };
  JR.stateLabel = (state) => STATE_LABELS[state];

  JR.stateBadge = function (run) {
    const state = JR.stateOf(run);
    return JR.h("span", { class: `state-badge state-${state}`, dataset: { state } }, STATE_LABELS[state]);
  };

  /** A due run that waits because its job (or template, project, pool) is
   * disabled: a tag that says so; null for a run that runs when due. */
  JR.heldTag = function (run) {
    if (!run.held) return null;
    const text = run.job_enabled === false ? "job disabled" : "paused: template, project or pool disabled";
    return JR.h("span", { class: "tag tag-off held-tag", title: "A worker takes it once enabled again." }, text);
  };

  const UNITS = { MINUTE: "minute", HOUR: "hour", DAY: "day", WEEK: "week", MONTH: "month" };

  /** "every 2 hours, next at 14:00 Europe/Amsterdam" */
  JR.scheduleInWords = function (job, nextIso) {
    const count = job.reschedule_interval;
    const unit = UNITS[job.reschedule_interval_type];
    let words;
    if (count && unit) words = count === 1 ? `every ${unit}` : `every ${count} ${unit}s`;
    else words = "not recurring";
    if (nextIso) words += `, next at ${JR.formatShort(nextIso, false)} ${JR.timezone}`;
    return words;
  };

  JR.excludesInWords = function (job) {
    return (job.reschedule_excludes || []).map((exclude) => {
      const note = exclude.note ? ` (${exclude.note})` : "";
      return `not between ${exclude.start_time.slice(0, 5)} and ${exclude.end_time.slice(0, 5)}${note}`;
    });
  };

  // --- live updates ---------------------------------------------------------

  const badge = () => document.getElementById("live-badge");

  JR.setConnection = function (state, detail) {
    const node = badge();
    if (!node || node.dataset.state === state) return;
    node.dataset.state = state;
    node.title = detail || "";
    node.replaceChildren();
    if (state === "live") node.textContent = "Live";
    else if (state === "lost") node.textContent = "Connection lost · retrying";
    else if (state === "ended") {
      const next = encodeURIComponent(location.pathname + location.search);
      node.append("Session ended · ", JR.h("a", { href: `/login?next=${next}` }, "log in"));
    } else node.textContent = "Connecting…";
  };

  /** Runs `task` every `interval` ms (start to start) and says how it went in
   * the live badge; after a failure it retries sooner than it would give up,
   * backing off to at most 5 s, and recovers by itself. */
  class Live {
    constructor(task, interval = 1000) {
      this.task = task;
      this.interval = interval;
      this.failures = 0;
      this.timer = null;
      this.running = false;
      this.again = false;
      document.addEventListener("visibilitychange", () => {
        if (!document.hidden) this.poke();
      });
    }

    start() {
      this.poke();
      return this;
    }

    /** Refresh now (after an action); a refresh under way runs once more. */
    poke() {
      if (this.running) {
        this.again = true;
        return;
      }
      clearTimeout(this.timer);
      this.run();
    }

    async run() {
      this.running = true;
      const started = performance.now();
      try {
        await this.task();
        this.failures = 0;
        JR.setConnection("live");
      } catch (error) {
        this.failures += 1;
        if (error instanceof ApiError && error.status === 401) JR.setConnection("ended", error.message);
        else JR.setConnection("lost", error.message);
        if (!(error instanceof ApiError)) console.error(error);
      }
      this.running = false;
      if (this.again) {
        this.again = false;
        this.run();
        return;
      }
      let delay = this.failures ? Math.min(1000 * 2 ** (this.failures - 1), 5000) : this.interval;
      if (document.hidden) delay = Math.max(delay, 10000);
      const wait = Math.max(0, delay - (performance.now() - started));
      this.timer = setTimeout(() => this.run(), wait);
    }
  }
  JR.Live = Live;

  // --- messages -------------------------------------------------------------

  let toastTimer = null;
  /** A short message at the bottom of the page; `kind` is "ok" or "error". */
  JR.notify = function (kind, ...content) {
    const node = document.getElementById("toast");
    if (!node) return;
    node.replaceChildren(...content.map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
    node.dataset.kind = kind;
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (node.hidden = true), kind === "error" ? 10000 : 5000);
  };

  /** Runs an action of a button: disabled while it runs, errors shown. */
  JR.act = async function (button, action) {
    button.disabled = true;
    try {
      await action();
    } catch (error) {
      JR.notify("error", error.message || String(error));
    } finally {
      button.disabled = false;
    }
  };

  // --- the project selector -------------------------------------------------

  const PROJECT_KEY = "jobrunner.project";

  function stored() {
    try {
      return localStorage.getItem(PROJECT_KEY);
    } catch (error) {
      return null;
    }
  }

  function store(value) {
    try {
      localStorage.setItem(PROJECT_KEY, value);
    } catch (error) {
      /* private mode: the choice lasts for this page only */
    }
  }

  const select = () => document.getElementById("project-select");

  function known(value) {
    const node = select();
    return Boolean(node && value && Array.from(node.options).some((o) => o.value === value));
  }

  /** The chosen project's id as a string, or "" for all projects: from the
   * URL (a shared link), else the last choice in this browser. */
  JR.currentProject = function () {
    const fromUrl = new URLSearchParams(location.search).get("project");
    if (known(fromUrl)) return fromUrl === "all" ? "" : fromUrl;
    const remembered = stored();
    if (known(remembered)) return remembered === "all" ? "" : remembered;
    return "";
  };

  JR.projectTitle = function (id) {
    const node = select();
    const option = node && Array.from(node.options).find((o) => o.value === String(id));
    return option ? option.textContent : "";
  };

  /** Keeps a page parameter in the URL, so a reload or a shared link shows the same. */
  JR.setUrlParam = function (name, value) {
    const url = new URL(location.href);
    if (value) url.searchParams.set(name, value);
    else url.searchParams.delete(name);
    history.replaceState(null, "", url);
  };

  /** Wires the selector: `onChange(projectId)` on pages that filter by
   * project; on a job's or run's page it shows that object's project and a
   * choice opens the runs of the chosen one. */
  JR.initProjectSelect = function (onChange, shownProject) {
    const node = select();
    if (!node) return;
    node.value = (shownProject && known(String(shownProject)) ? String(shownProject) : JR.currentProject()) || "all";
    node.addEventListener("change", () => {
      store(node.value);
      if (onChange) {
        JR.setUrlParam("project", node.value === "all" ? "" : node.value);
        onChange(node.value === "all" ? "" : node.value);
      } else {
        location.href = `/?project=${encodeURIComponent(node.value)}`;
      }
    });
  };

  JR.debounce = function (fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  };
})();
