// Typeset the math that pymdownx.arithmatex (generic mode) wraps in `.arithmatex` elements:
// `\(...\)` inline, `\[...\]` display. KaTeX is served by the site itself (docs/assets/katex),
// and only arithmatex output is touched, so a `$` inside code blocks stays literal.
// `document$` is mkdocs-material's page-load observable (also fires on instant navigation).
function typesetMath(root) {
  for (const el of root.querySelectorAll(".arithmatex")) {
    renderMathInElement(el, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  }
}

if (typeof document$ !== "undefined") {
  document$.subscribe(({ body }) => typesetMath(body));
} else {
  document.addEventListener("DOMContentLoaded", () => typesetMath(document.body));
}
