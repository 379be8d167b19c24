// Live board: every event of this feature re-renders the board fragment, and the
// running job's log streams in. Driven by Server-Sent Events only (no timers).
(function () {
  const board = document.getElementById("board");
  const slug = board.dataset.slug;
  const live = document.getElementById("live");
  const events = document.getElementById("events");
  const log = document.getElementById("log");
  let logSource = null, logJob = null, refreshing = false, again = false;

  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    // the page of WPs shown (?after=WPnnnn) is kept across refreshes
    const response = await fetch(`/features/${slug}/panel${window.location.search}`, {credentials: "same-origin"});
    if (response.ok) board.innerHTML = await response.text();
    refreshing = false;
    followLog();
    if (again) { again = false; refresh(); }
  }

  function followLog() {
    const marker = document.getElementById("live-job");
    const job = marker && marker.dataset.job;
    if (!job || job === logJob) return;
    if (logSource) logSource.close();
    logJob = job;
    log.textContent = "";
    document.getElementById("log-job").textContent = job;
    logSource = new EventSource(`/api/events/jobs/${job}/log`);
    logSource.addEventListener("log", (e) => {
      const line = JSON.parse(e.data);
      log.textContent += `[${line.time}] ${window.agileplusVisible(line.line)}\n`;
      log.scrollTop = log.scrollHeight;
    });
  }

  // One readable line per event: "WP01: doing → for_review (agent:codex)", not the payload's JSON.
  function describe(data) {
    const p = data.payload || {};
    const wp = (data.subject.match(/\.wp\.([^.]+)\./) || [])[1] || p.wp_id || "";
    const what = data.subject.split(".").slice(-1)[0];
    if (p.from !== undefined && p.to !== undefined) return `${wp}: ${p.from} → ${p.to}${p.actor ? ` (${p.actor})` : ""}`;
    const keys = ["job_id", "state", "reason", "commits", "success"].filter((k) => p[k] !== undefined && p[k] !== null);
    return `${wp ? wp + ": " : ""}${what}${keys.length ? " · " + keys.map((k) => `${k} ${p[k]}`).join(", ") : ""}`;
  }

  const source = new EventSource(`/api/events/stream/${slug}`);
  source.onopen = () => { live.textContent = "● live"; live.className = "live on"; };
  source.onerror = () => { live.textContent = "○ reconnecting"; live.className = "live"; };
  source.onmessage = (e) => {
    const data = JSON.parse(e.data);
    const item = document.createElement("li");
    item.textContent = `#${data.id} ${describe(data)}`;
    item.title = data.subject;
    events.prepend(item);
    refresh();
  };
  followLog();
})();
