/**
 * The web UI's only script, and an optional one: copy buttons (hidden without JS, the command
 * stays selectable) and submitting the filters as soon as one changes.
 */
export const APP_JS = `
'use strict';
for (const button of document.querySelectorAll('button[data-copy]')) {
  const source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) continue;
  button.hidden = false;
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(source.textContent.trim());
      button.dataset.state = 'done';
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Press Ctrl+C';
      getSelection().selectAllChildren(source);
    }
    setTimeout(() => { button.textContent = 'Copy'; delete button.dataset.state; }, 2000);
  });
}
for (const select of document.querySelectorAll('select[data-autosubmit]')) {
  select.addEventListener('change', () => select.form && select.form.requestSubmit());
}
`;
