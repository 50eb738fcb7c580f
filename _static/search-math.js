// Search snippets without raw TeX.  Sphinx's search builds each result's snippet from the text of
// the fetched page, where mathematics is still its TeX source ("\(\gamma_c\)").  This wraps
// Search.htmlToText so that every math element is first replaced by a plain-text reading of it
// (Greek letters as letters, commands and braces dropped): "the weight decay γ_c".
// This file loads on every page, before searchtools.js: the wrap waits for DOMContentLoaded, when
// Search exists and has not yet run (its own start is queued for the same event, after this one).
document.addEventListener("DOMContentLoaded", () => {
  if (typeof Search === "undefined" || !Search.htmlToText) return;
  const greek = {alpha: "α", beta: "β", gamma: "γ", Gamma: "Γ", delta: "δ", Delta: "Δ", epsilon: "ε",
    varepsilon: "ε", zeta: "ζ", eta: "η", theta: "θ", Theta: "Θ", kappa: "κ", lambda: "λ", Lambda: "Λ",
    mu: "μ", nu: "ν", xi: "ξ", pi: "π", rho: "ρ", sigma: "σ", Sigma: "Σ", tau: "τ", phi: "φ", Phi: "Φ",
    chi: "χ", psi: "ψ", omega: "ω", Omega: "Ω", ell: "ℓ", infty: "∞", le: "≤", leq: "≤", ge: "≥", geq: "≥",
    times: "×", approx: "≈", sim: "~", to: "→", partial: "∂", nabla: "∇", cdot: "·", pm: "±", ne: "≠"};
  const plain = (tex) => tex
    .replace(/^\\\(|\\\)$|^\\\[|\\\]$/g, "")
    .replace(/\\([A-Za-z]+)/g, (_, name) => greek[name] ?? "")
    .replace(/[{}$]/g, "")
    .replace(/\\[,;!: ]/g, " ")
    .replace(/\s+/g, " ")
    .trim();
  const original = Search.htmlToText;
  Search.htmlToText = (htmlString, anchor) => {
    const parsed = new DOMParser().parseFromString(htmlString, "text/html");
    parsed.querySelectorAll(".math").forEach((el) => el.replaceWith(parsed.createTextNode(plain(el.textContent))));
    return original(parsed.documentElement.outerHTML, anchor);
  };
});
