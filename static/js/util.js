/* Small helpers shared by the page scripts. */
window.demo = window.demo || {};
window.demo.onReady = function (callback) {
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", callback);
  } else {
    callback();
  }
};
