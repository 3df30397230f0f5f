/* Job-Runner admin pages: exclude rows, the schedule preview, copying a worker's ini.
 *
 * The forms work without this script (the server validates everything); it
 * only adds rows, shows the next runs while a schedule is typed, and copies.
 */
"use strict";

(function () {
  const $ = (selector, root) => (root || document).querySelector(selector);
  const SCHEDULE_FIELDS = ["reschedule_interval", "reschedule_interval_type", "cron_expression", "timezone"];
  const PREVIEW_DELAY_MS = 300;

  // --- excludes: rows to add and remove -----------------------------------------

  function setUpExcludes() {
    const rows = $("#exclude-rows");
    const template = $("#exclude-row-template");
    const add = $("#add-exclude");
    if (!rows || !template || !add) return;
    add.addEventListener("click", function () {
      const row = template.content.firstElementChild.cloneNode(true);
      rows.appendChild(row);
      row.querySelector("input").focus();
      rows.dispatchEvent(new Event("input", { bubbles: true }));
    });
    rows.addEventListener("click", function (event) {
      const button = event.target.closest(".remove-exclude");
      if (!button) return;
      button.closest(".exclude-row").remove();
      add.focus();
      rows.dispatchEvent(new Event("input", { bubbles: true }));
    });
  }

  // --- the next runs of the schedule being typed ---------------------------------

  function fieldValue(form, name) {
    const input = form.elements.namedItem(name);
    return input && "value" in input ? input.value.trim() : "";
  }

  function excludes(form) {
    const result = [];
    for (const row of form.querySelectorAll(".exclude-row")) {
      const [start, end, note] = row.querySelectorAll("input");
      if (start.value || end.value || note.value) {
        result.push({ start_time: start.value, end_time: end.value, note: note.value });
      }
    }
    return result;
  }

  function formatter(zone) {
    const options = {
      weekday: "short", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hour12: false, timeZoneName: "short",
    };
    try {
      return new Intl.DateTimeFormat("en-GB", Object.assign({ timeZone: zone }, options));
    } catch (error) {
      return new Intl.DateTimeFormat("en-GB", Object.assign({ timeZone: document.body.dataset.timezone || "UTC" }, options));
    }
  }

  function setUpPreview() {
    const form = $("#admin-form");
    const panel = $("#schedule-preview");
    if (!form || !panel) return;
    const status = $("#preview-status");
    const list = $("#preview-times");
    let timer = null;
    let sequence = 0;
    let lastQuery = null;

    function show(state, message, times, zone) {
      panel.dataset.state = state;
      status.textContent = message;
      list.replaceChildren();
      const format = formatter(zone);
      for (const time of times || []) {
        const item = document.createElement("li");
        const when = document.createElement("time");
        when.dateTime = time;
        when.textContent = format.format(new Date(time));
        item.appendChild(when);
        list.appendChild(item);
      }
    }

    async function refresh() {
      const params = new URLSearchParams();
      for (const name of SCHEDULE_FIELDS) {
        const value = fieldValue(form, name);
        if (value) params.set(name, value);
      }
      if (!params.get("reschedule_interval") && !params.get("cron_expression")) {
        lastQuery = null;
        show("empty", "No schedule: the job runs when started by hand or by its parent.", []);
        return;
      }
      const rows = excludes(form);
      if (rows.length) params.set("reschedule_excludes", JSON.stringify(rows));
      params.set("count", "5");
      const query = params.toString();
      if (query === lastQuery) return;
      lastQuery = query;
      const mine = ++sequence;
      panel.dataset.state = "loading";
      let response, body;
      try {
        response = await fetch(panel.dataset.url + "?" + query, {
          credentials: "same-origin", headers: { Accept: "application/json" },
        });
        body = await response.json();
      } catch (error) {
        if (mine === sequence) show("error", "The preview is not available right now.", []);
        return;
      }
      if (mine !== sequence) return; // an answer to an older query
      const zone = params.get("timezone") || document.body.dataset.timezone || "UTC";
      if (response.ok) {
        show("ok", "From now on, the schedule runs at (" + zone + "):", body.times, zone);
      } else {
        const errors = Object.entries(body.errors || {}).map(([name, message]) => name + ": " + message);
        show("error", errors.length ? errors.join(" · ") : body.error || "Invalid schedule.", []);
      }
    }

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(refresh, PREVIEW_DELAY_MS);
    }

    form.addEventListener("input", schedule);
    form.addEventListener("change", schedule);
    refresh();
  }

  // --- a new worker's ini file ----------------------------------------------------

  function setUpCopy() {
    const button = $("#copy-ini");
    const text = $("#worker-ini");
    if (!button || !text) return;
    button.addEventListener("click", async function () {
      try {
        await navigator.clipboard.writeText(text.value);
      } catch (error) {
        text.select();
        document.execCommand("copy");
      }
      button.textContent = "Copied";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpExcludes();
    setUpPreview();
    setUpCopy();
  });
})();
