// Live refresh without reloading the page. An element with data-live-url is refreshed from that JSON
// endpoint every data-live-interval milliseconds (default 3000); the answer's `sections` map names to
// server-rendered HTML that replaces the children of [data-live-section=name]. `final: true` stops polling
// (a finished job). No framework, no build step: this file is served as is.
(function () {
  "use strict";

  function start(root) {
    var url = root.getAttribute("data-live-url");
    var interval = parseInt(root.getAttribute("data-live-interval") || "3000", 10);
    var stamp = root.querySelector("[data-live-stamp]");
    var failures = 0;

    function schedule() {
      // Back off while the server is unreachable, up to 30 s, so a stopped dashboard is not hammered.
      window.setTimeout(tick, Math.min(interval * Math.pow(2, failures), 30000));
    }

    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (response.status === 401) {
            window.location.reload(); // signed out: the reload shows the sign-in page
            throw new Error("signed out");
          }
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (data) {
          failures = 0;
          var sections = data.sections || {};
          Object.keys(sections).forEach(function (name) {
            var target = root.querySelector('[data-live-section="' + name + '"]');
            if (target) target.innerHTML = sections[name];
          });
          if (stamp) {
            stamp.textContent = "Updated " + new Date().toLocaleTimeString();
            stamp.classList.remove("stale");
          }
          root.setAttribute("data-live-final", data.final ? "true" : "false");
          if (!data.final) schedule();
        })
        .catch(function (error) {
          if (error && error.message === "signed out") return;
          failures += 1;
          if (stamp) {
            stamp.textContent = "Connection lost; retrying…";
            stamp.classList.add("stale");
          }
          schedule();
        });
    }

    schedule();
  }

  // Forms with data-confirm ask before a destructive action (ban, cancel, delete images). Delegated from
  // the document so forms inside refreshed sections are guarded too.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.hasAttribute && form.hasAttribute("data-confirm") && !window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-url]").forEach(start);
  });
})();
