// Draws a pathway's Mermaid flowchart in #diagram (the pathway page, and the editor as the draft changes).
// Mermaid is served by the app (/vendor/mermaid.min.js, fetched at set-up); no inline script.
(function () {
  "use strict";
  var counter = 0;
  function status(text) {
    var el = document.getElementById("diagram-status");
    if (el) { el.textContent = text; }
  }
  function draw(source) {
    var box = document.getElementById("diagram");
    if (!box) { return Promise.resolve(); }
    if (typeof mermaid === "undefined") {
      status("The diagram renderer is not installed (run scripts/setup.sh); the Mermaid source is shown.");
      box.textContent = source;
      return Promise.resolve();
    }
    counter += 1;
    return mermaid.render("diagram-svg-" + counter, source).then(function (out) {
      box.innerHTML = out.svg;
      box.setAttribute("data-source", source);
      box.setAttribute("data-rendered", String(counter));
      status("");
    }).catch(function (error) {
      status("The diagram could not be drawn: " + (error && error.message ? error.message : error));
    });
  }
  if (typeof mermaid !== "undefined") {
    mermaid.initialize({ startOnLoad: false, securityLevel: "strict", flowchart: { htmlLabels: false }, maxTextSize: 200000 });
  }
  window.pathwaysDiagram = { draw: draw };
  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("diagram");
    if (box && box.getAttribute("data-source")) { draw(box.getAttribute("data-source")); }
  });
})();
