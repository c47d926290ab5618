/* Mark each figure once its image has loaded, so a broken image stands out. */
window.demo.onReady(function () {
  document.querySelectorAll(".grid figure img").forEach(function (img) {
    var mark = function () {
      if (img.naturalWidth > 0) {
        img.closest("figure").classList.add("loaded");
      }
    };
    if (img.complete) {
      mark();
    } else {
      img.addEventListener("load", mark);
    }
  });
  document.documentElement.dataset.galleryReady = "yes";
});
