// The pathway editor: CodeMirror 6 with YAML (window.CM, bundled at set-up into /vendor/codemirror.min.js).
// As one types, the draft is sent (debounced, with the session's CSRF token) to POST /pathways/NAME/check,
// which checks it as `pathways validate` does; its problems become lint diagnostics at their line and
// column, the diagram follows the draft and the changes from the published version are listed.
(function () {
  "use strict";
  var host = document.getElementById("editor");
  var name = host.getAttribute("data-name");
  var csrf = host.getAttribute("data-csrf");
  var initial = document.getElementById("draft").value;

  var base = host.getAttribute("data-base");  // the file's content hash as read: saving over someone else's save is refused

  function post(path, text) {
    var body = new URLSearchParams();
    body.set("csrf", csrf);
    body.set("text", text);
    body.set("base", base);
    return fetch(path, { method: "POST", body: body, credentials: "same-origin",
                         headers: { "Content-Type": "application/x-www-form-urlencoded" } })
      .then(function (response) {
        return response.json().catch(function () {
          throw new Error("the server answered " + response.status + " (log in again if the session ended)");
        });
      });
  }

  function position(doc, line, col) {
    if (!line) { return 0; }
    var l = doc.line(Math.min(Math.max(line, 1), doc.lines));
    return Math.min(l.from + Math.max(col - 1, 0), l.to);
  }

  function list(id, items, render) {
    var ul = document.getElementById(id);
    ul.textContent = "";
    items.forEach(function (item) {
      var li = document.createElement("li");
      render(li, item);
      ul.appendChild(li);
    });
  }

  function show(answer) {
    var problems = answer.problems.concat(answer.elsewhere);
    var errors = problems.filter(function (p) { return p.severity === "error"; }).length;
    document.getElementById("check-status").textContent = answer.valid
      ? "Valid" + (problems.length ? " (" + problems.length + " warnings)" : "") + "; checked in " + answer.milliseconds + " ms."
      : errors + " problem" + (errors === 1 ? "" : "s") + "; checked in " + answer.milliseconds + " ms.";
    list("problems", problems, function (li, p) {
      li.className = p.severity;
      li.setAttribute("data-line", p.line);
      li.setAttribute("data-code", p.code);
      li.textContent = p.text;
    });
    if (answer.diagram) { window.pathwaysDiagram.draw(answer.diagram); }
    if (answer.published_error) {
      list("changes", [{ sentence: "Not compared: " + answer.published_error }], function (li, c) { li.textContent = c.sentence; });
    } else if (answer.changes) {
      var changes = answer.changes.length ? answer.changes : [{ sentence: "No changes from " + answer.published + "." }];
      list("changes", changes, function (li, c) { li.textContent = c.sentence; });
    } else if (answer.valid) {
      list("changes", [{ sentence: "No version is published yet." }], function (li, c) { li.textContent = c.sentence; });
    }
  }

  function check(view) {
    var text = view.state.doc.toString();
    return post("/pathways/" + name + "/check", text).then(function (answer) {
      if (answer.error) { throw new Error(answer.error); }
      if (view.state.doc.toString() !== text) { return []; }  // typed on meanwhile: the next check counts
      show(answer);
      var doc = view.state.doc;
      return answer.problems.map(function (p) {
        var from = position(doc, p.line, p.col);
        var to = Math.max(from, Math.min(doc.lineAt(from).to, from + 1));
        return { from: from, to: to, severity: p.severity, source: p.code,
                 message: p.code + " " + p.message + (p.hint ? " (" + p.hint + ")" : "") };
      });
    }).catch(function (error) {
      document.getElementById("check-status").textContent = "Not checked: " + error.message;
      return [];
    });
  }

  var saved = initial;
  var publish = document.getElementById("publish");
  function unsaved(doc) {  // Publish publishes the file on disk: not while the draft differs from it
    var differs = doc.toString() !== saved;
    publish.disabled = differs;
    publish.title = differs ? "Save the draft first: publishing publishes the saved file" : "";
  }

  var view = new CM.EditorView({
    doc: initial,
    parent: host,
    extensions: [CM.basicSetup, CM.yaml(), CM.lintGutter(), CM.linter(check, { delay: 300 }),
                 CM.EditorView.updateListener.of(function (update) { if (update.docChanged) { unsaved(update.state.doc); } })]
  });
  window.pathwaysEditor = view;

  document.getElementById("save").addEventListener("click", function () {
    var out = document.getElementById("save-status");
    out.textContent = "Saving...";
    var text = view.state.doc.toString();
    post("/pathways/" + name + "/save", text).then(function (answer) {
      out.textContent = answer.message || answer.error;
      if (answer.saved) { saved = text; base = answer.base; unsaved(view.state.doc); }
    }).catch(function (error) { out.textContent = "Not saved: " + error.message; });
  });
})();
