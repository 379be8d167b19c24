// Text from an agent shown on a page: control characters as visible symbols (ESC as ␛), the same
// rule as the server's (agileplus/dashboard/text.py). Always set with textContent, never as HTML.
window.agileplusVisible = function (text) {
  return String(text).replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => {
    const n = c.charCodeAt(0);
    return n < 32 ? String.fromCharCode(0x2400 + n) : n === 127 ? "\u2421" : "\\x" + n.toString(16);
  });
};
