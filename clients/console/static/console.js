// Trustwire console keyboard shortcuts. Keys act on elements marked data-key="x"
// (buttons are pressed, radios chosen, then the reason field focused); j/k move between
// queue items; "/" jumps to the filters. Nothing fires while typing in a field.
(function () {
  "use strict";
  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }
  function move(step) {
    var links = Array.prototype.slice.call(document.querySelectorAll("a.item-link"));
    if (!links.length) { return; }
    var at = links.indexOf(document.activeElement);
    var next = at < 0 ? (step > 0 ? 0 : links.length - 1) : Math.min(links.length - 1, Math.max(0, at + step));
    links[next].focus();
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) { return; }
    if (ev.key === "j") { move(1); ev.preventDefault(); return; }
    if (ev.key === "k") { move(-1); ev.preventDefault(); return; }
    if (ev.key === "/") {
      var f = document.querySelector("form.filters select, form.filters input");
      if (f) { f.focus(); ev.preventDefault(); }
      return;
    }
    var target = document.querySelector('[data-key="' + ev.key + '"]');
    if (!target) { return; }
    ev.preventDefault();
    if (target.type === "radio") {
      target.checked = true;
      var reason = document.getElementById("reason");
      if (reason) { reason.focus(); }
    } else {
      target.click();
    }
  });
})();
