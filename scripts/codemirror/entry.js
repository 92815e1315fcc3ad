// The parts of CodeMirror 6 the pathway editor (pathways web, /pathways/NAME/edit) uses, bundled by
// scripts/setup.sh with esbuild (versions: package-lock.json here) into src/pathways/views/vendor/codemirror.min.js as window.CM.
export { EditorView, basicSetup } from "codemirror";
export { EditorState } from "@codemirror/state";
export { yaml } from "@codemirror/lang-yaml";
export { linter, lintGutter, forceLinting, setDiagnostics } from "@codemirror/lint";
