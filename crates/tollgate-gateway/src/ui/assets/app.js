// The dashboard's small script: a copy button for the key shown once, and a confirmation
// before a delete. Everything else works without it (plain forms and links).
"use strict";
document.addEventListener("click", (e) => {
  const button = e.target.closest("[data-copy]");
  if (!button) return;
  const el = document.getElementById(button.dataset.copy);
  if (el && navigator.clipboard) {
    navigator.clipboard.writeText(el.textContent.trim()).then(() => { button.textContent = "✓"; });
  }
});
document.addEventListener("submit", (e) => {
  const form = e.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) e.preventDefault();
});
