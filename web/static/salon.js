// Progressive enhancement only: the page works fully without this file.
(function () {
  "use strict";
  var form = document.getElementById("search-form");
  var box = document.getElementById("q");
  if (!form || !box) return;
  var timer = null;
  var seq = 0;

  function refresh() {
    var params = new URLSearchParams(new FormData(form));
    if (!box.value.trim()) return;
    var mine = ++seq;
    fetch("/?" + params.toString(), { headers: { Accept: "text/html" } })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        if (mine !== seq) return; // a newer keystroke won
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("results");
        var current = document.getElementById("results");
        if (fresh && current) {
          current.replaceWith(document.importNode(fresh, true));
          history.replaceState(null, "", "/?" + params.toString());
        }
      })
      .catch(function () { /* keep the current results; submitting still works */ });
  }

  // Search as you type, debounced so we do not query on every keystroke.
  box.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 350);
  });
  form.addEventListener("change", function (ev) {
    if (ev.target !== box) refresh();
  });

  // Keyboard: "/" focuses the box; ArrowDown/ArrowUp move between result links.
  document.addEventListener("keydown", function (ev) {
    var links = Array.prototype.slice.call(document.querySelectorAll(".result-link"));
    var i = links.indexOf(document.activeElement);
    if (ev.key === "/" && document.activeElement !== box) {
      ev.preventDefault();
      box.focus();
    } else if (ev.key === "ArrowDown" && links.length && (i >= 0 || document.activeElement === box)) {
      ev.preventDefault();
      links[Math.min(i + 1, links.length - 1)].focus();
    } else if (ev.key === "ArrowUp" && i >= 0) {
      ev.preventDefault();
      if (i === 0) box.focus(); else links[i - 1].focus();
    }
  });

  var passage = document.getElementById("passage");
  if (passage) passage.focus({ preventScroll: false });
})();
