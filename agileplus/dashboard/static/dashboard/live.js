// The graph, timeline and detail pages: the server draws each picture (inline SVG); an event on
// the SSE stream re-fetches it. EventSource reconnects by itself and sends Last-Event-ID, so a
// lost connection resumes after the last event seen. The timeline's now-line moves every second.
(function () {
  const target = document.querySelector("[data-svg]");
  const live = document.getElementById("live");
  let busy = false, again = false;

  async function refresh() {
    if (!target) return;
    if (busy) { again = true; return; }
    busy = true;
    try {
      const response = await fetch(target.dataset.svg + window.location.search, {credentials: "same-origin"});
      if (response.ok) {
        target.innerHTML = await response.text();
        window.__redraws = (window.__redraws || 0) + 1;
        toNow();
      }
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  }

  // The timeline opens scrolled to its right end: now, where things happen (a phone shows the last minutes).
  function toNow() {
    const box = target && target.querySelector(".timeline-scroll");
    if (box) box.scrollLeft = box.scrollWidth;
  }
  toNow();
  window.addEventListener("resize", toNow);

  function tick() {
    const svg = target && target.querySelector("svg.timeline");
    if (!svg) return;
    const start = Number(svg.dataset.start), end = Number(svg.dataset.end);
    const left = Number(svg.dataset.left), width = Number(svg.dataset.width);
    const now = Date.now();
    if (now >= end) { refresh(); return; }
    const x = left + (width - left) * (now - start) / (end - start);
    const line = svg.querySelector(".now-line");
    line.setAttribute("x1", x); line.setAttribute("x2", x);
    svg.querySelectorAll("rect.bar.running").forEach((bar) => {
      bar.setAttribute("width", Math.max(2, x - Number(bar.getAttribute("x"))));
    });
  }

  const slug = target && target.dataset.slug;
  if (!target) live.remove();  // a page without a live picture
  if (target) {
    const source = new EventSource(slug ? `/api/events/stream/${slug}` : "/api/events/stream");
    source.onopen = () => { live.textContent = "● live"; live.className = "live on"; };
    source.onerror = () => { live.textContent = "○ reconnecting"; live.className = "live"; };
    source.onmessage = (e) => { window.__lastEventId = e.lastEventId; refresh(); };
  }
  if (target && target.dataset.clock === "on") setInterval(tick, 1000);

  // A running job's page: its new log lines as they are written (after the last one drawn).
  const follow = document.querySelector("#log-lines[data-follow]");
  if (follow) {
    const hidden = (follow.dataset.without || "").split(" ");
    const lines = new EventSource(`/api/events/jobs/${follow.dataset.job}/log?after=${follow.dataset.after}`);
    lines.addEventListener("log", (e) => {
      const line = JSON.parse(e.data);
      if (hidden.includes(line.stream)) return;
      const item = document.createElement("li"), time = document.createElement("time"), text = document.createElement("span");
      item.className = `stream-${line.stream}`;
      time.textContent = line.time;
      text.textContent = " " + window.agileplusVisible(line.line);
      item.append(time, text);
      follow.append(item);
    });
  }

  // Actions: a POST to the API view that does it, with the session's CSRF token; the answer is
  // shown as text. The server decides (a user without the role gets 403 whatever the page shows).
  const csrf = document.querySelector("meta[name=csrf-token]");
  document.querySelectorAll("button.action[data-url]").forEach((button) => {
    button.addEventListener("click", async () => {
      const out = document.getElementById("action-result");
      button.disabled = true;
      const response = await fetch(button.dataset.url, {
        method: "POST", credentials: "same-origin", body: button.dataset.body,
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrf ? csrf.content : ""},
      });
      const body = await response.json().catch(() => ({}));
      out.textContent = `${button.dataset.name}: ${response.status} ${body.error ? body.error.message || "" : "accepted"}`;
      out.dataset.status = String(response.status);
      button.disabled = false;
    });
  });
})();
