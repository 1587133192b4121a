// Copy buttons on Settings → Single sign-on (progressive: the buttons stay hidden without JavaScript).
for (const button of document.querySelectorAll('button.copy[data-copy]')) {
  button.hidden = false;
  button.addEventListener('click', () => {
    const text = button.getAttribute('data-copy') ?? '';
    const done = () => {
      button.textContent = 'Copied';
      setTimeout(() => (button.textContent = 'Copy'), 1500);
    };
    if (navigator.clipboard?.writeText) navigator.clipboard.writeText(text).then(done, () => (button.textContent = 'Select and copy'));
    else button.textContent = 'Select and copy';
  });
}
