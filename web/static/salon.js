// Progressive enhancement only: the page works fully without this file.
// Results as you type come from the page itself (GET /?q=…, rendered by the same templates in
// the reader's language), so this file holds no wording of its own except the one message of a
// request that never got an answer, which the form carries in data-failed.
(function () {
  "use strict";
  var form = document.getElementById("search-form");
  var box = document.getElementById("q");
  var results = document.getElementById("results");
  var status = document.getElementById("status");
  if (!form || !box || !results || !status) return;
  var timer = null;
  var seq = 0;

  function paramsOf(f) {
    var params = new URLSearchParams(new FormData(f));
    // drop empty filters so the address stays the one a plain submit would give
    ["event", "date_from", "date_to"].forEach(function (k) { if (!params.get(k)) params.delete(k); });
    return params;
  }

  // The live region is never replaced: only its text changes, which is what screen readers
  // announce. The results list is replaced in place (its element stays).
  function show(doc) {
    var fresh = doc.getElementById("results");
    var freshStatus = doc.getElementById("status");
    if (!fresh) return false;
    results.replaceChildren.apply(results, Array.prototype.map.call(fresh.childNodes, function (n) {
      return document.importNode(n, true);
    }));
    status.textContent = freshStatus ? freshStatus.textContent.trim() : "";
    if (doc.title) document.title = doc.title;
    return true;
  }

  // An answer that is not the page (a 503 error page) or no answer at all: say so, and take the
  // old results away so they are not read as the answer to the new query.
  function fail(doc) {
    var msg = (doc && doc.querySelector(".error")) ? doc.querySelector(".error").textContent.trim() : form.dataset.failed;
    var p = document.createElement("p");
    p.className = "error";
    p.textContent = msg;
    results.replaceChildren(p);
    status.textContent = msg;
  }

  // Typing replaces the history entry it made; the first keystroke of a new search makes one,
  // so Back returns to the search before it.
  function remember(url) {
    if (url === location.pathname + location.search) return;
    if (history.state && history.state.typed) history.replaceState({ typed: true }, "", url);
    else history.pushState({ typed: true }, "", url);
  }

  function load(params, record) {
    var mine = ++seq;
    var url = "/?" + params.toString();
    fetch(url, { headers: { Accept: "text/html" } })
      .then(function (r) {
        return r.text().then(function (html) { return { ok: r.ok, html: html }; });
      })
      .then(function (got) {
        if (mine !== seq) return; // a newer keystroke won
        var doc = new DOMParser().parseFromString(got.html, "text/html");
        // a refused query (422: empty, too long) comes back as the page with its error in place
        if (!show(doc)) fail(doc);
        else if (!got.ok && !results.querySelector(".error")) fail(doc);
        if (record) remember(url);
      })
      .catch(function () {
        if (mine === seq) fail(null);
      });
  }

  function refresh() {
    if (!box.value.trim()) return;
    load(paramsOf(form), true);
  }

  // Search as you type, debounced so we do not query on every keystroke.
  box.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 350);
  });
  form.addEventListener("change", function (ev) {
    if (ev.target !== box) refresh();
  });
  // Back and Forward between searches made by typing: show the search of that entry.
  window.addEventListener("popstate", function () {
    var params = new URLSearchParams(location.search);
    box.value = params.get("q") || "";
    load(params, false); // no query: the page's welcome and examples
  });

  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  // Keyboard: "/" focuses the box unless the reader is typing in a field already;
  // ArrowDown/ArrowUp move between the box and the result links.
  document.addEventListener("keydown", function (ev) {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var active = document.activeElement;
    var links = Array.prototype.slice.call(document.querySelectorAll(".result-link"));
    var i = links.indexOf(active);
    if (ev.key === "/" && !typing(active)) {
      ev.preventDefault();
      box.focus();
      box.select();
    } else if (ev.key === "ArrowDown" && links.length && (i >= 0 || active === box)) {
      ev.preventDefault();
      links[Math.min(i + 1, links.length - 1)].focus();
    } else if (ev.key === "ArrowUp" && i >= 0) {
      ev.preventDefault();
      if (i === 0) box.focus(); else links[i - 1].focus();
    }
  });
})();

// The article page: the passage a result pointed to gets focus, so it is read first.
(function () {
  "use strict";
  var passage = document.getElementById("passage");
  if (passage) passage.focus({ preventScroll: false });
})();
