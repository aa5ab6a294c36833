// Small progressive enhancements; every page works without this file.
document.addEventListener("click", (e) => {
  const copy = e.target.closest("button[data-copy]");
  if (copy) {
    const el = document.querySelector(copy.dataset.copy);
    if (el && navigator.clipboard) {
      navigator.clipboard.writeText(el.textContent.trim()).then(() => {
        copy.textContent = "Copied";
        setTimeout(() => { copy.textContent = "Copy"; }, 1500);
      });
    }
    return;
  }
  const confirmBtn = e.target.closest("button[data-confirm]");
  if (confirmBtn && !window.confirm(confirmBtn.dataset.confirm)) {
    e.preventDefault();
  }
});
