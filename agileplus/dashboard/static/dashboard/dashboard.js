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
      log.textContent += `[${line.time}] ${line.line}\n`;
      log.scrollTop = log.scrollHeight;
    });
  }

  const source = new EventSource(`/api/events/stream/${slug}`);
  source.onopen = () => { live.textContent = "● live"; live.className = "live on"; };
  source.onerror = () => { live.textContent = "○ reconnecting"; live.className = "live"; };
  source.onmessage = (e) => {
    const data = JSON.parse(e.data);
    const item = document.createElement("li");
    item.textContent = `#${data.id} ${data.subject} ${JSON.stringify(data.payload)}`;
    events.prepend(item);
    refresh();
  };
  followLog();
})();
