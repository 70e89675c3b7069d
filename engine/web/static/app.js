/* vocalcast — the little JavaScript of the private space: every page works without it.
   Upload progress, live send progress (polling the UI's JSON), confirmations. No framework, no CDN. */
(function () {
  "use strict";

  // Buttons that destroy something ask first.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  // --- upload with a progress bar ------------------------------------------------------------------
  function bindUpload(root) {
    var form = root.querySelector("form[data-upload]");
    if (!form || !window.XMLHttpRequest || !window.FormData) { return; }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var box = form.querySelector(".upload-progress");
      var bar = form.querySelector("progress");
      var text = form.querySelector("[data-role=upload-text]");
      var submit = form.querySelector("button[type=submit]");
      box.hidden = false;
      submit.disabled = true;
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          var percent = Math.round(100 * e.loaded / e.total);
          bar.value = percent;
          bar.textContent = percent + " %";
          text.textContent = percent < 100 ? percent + " %" : "Fichier reçu, conversion en cours…";
        }
      });
      xhr.addEventListener("load", function () {
        var type = xhr.getResponseHeader("Content-Type") || "";
        if (xhr.status < 400 && type.indexOf("application/json") === 0) {
          window.location.assign(JSON.parse(xhr.responseText).location);
          return;
        }
        // A refused file: show the page's answer (the error beside the field) in place.
        var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
        var main = doc.querySelector("main");
        if (main) {
          document.querySelector("main").replaceWith(main);
          bindUpload(document);
          var error = document.querySelector(".field-error");
          var field = error ? document.getElementById("f-file") : null;
          if (field) { field.focus(); }
        } else {
          submit.disabled = false;
          text.textContent = "Le transfert a échoué. Réessayez.";
        }
      });
      xhr.addEventListener("error", function () {
        submit.disabled = false;
        text.textContent = "Le transfert a été interrompu. Vérifiez votre connexion et réessayez.";
      });
      xhr.send(new FormData(form));
    });
  }

  // --- live progress ------------------------------------------------------------------------------
  function setProgress(container, item) {
    var bar = container.querySelector("progress");
    var text = container.querySelector("[data-role=progress-text]");
    var status = container.querySelector("[data-role=status]");
    if (bar) { bar.value = item.percent; bar.textContent = item.percent + " %"; }
    if (text) {
      text.textContent = item.done.toLocaleString("fr-FR") + " / " + item.total.toLocaleString("fr-FR") +
        " (" + item.percent + " %)";
    }
    if (status && status.textContent.indexOf(item.status_label) !== 0) { status.textContent = item.status_label; }
  }

  function pollDetail() {
    var section = document.querySelector("[data-progress-url]");
    if (!section) { return; }
    var url = section.getAttribute("data-progress-url");
    var timer = window.setInterval(function () {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (item) {
          if (!item) { return; }
          setProgress(section, item);
          if (!item.live) {
            window.clearInterval(timer);
            var live = section.querySelector("[data-role=live]");
            if (live) { live.textContent = "Envoi " + item.status_label.toLowerCase() + "."; }
            // The chart and the per-number results are drawn by the server: reload them once.
            window.setTimeout(function () { window.location.reload(); }, 500);
          }
        })
        .catch(function () { /* the next tick tries again */ });
    }, 2000);
  }

  function pollList() {
    var table = document.querySelector("[data-counters-url]");
    if (!table) { return; }
    var rows = table.querySelectorAll("[data-send-id]");
    if (!rows.length) { return; }
    var ids = Array.prototype.map.call(rows, function (r) { return r.getAttribute("data-send-id"); });
    var url = table.getAttribute("data-counters-url") + "?ids=" + encodeURIComponent(ids.join(","));
    var timer = window.setInterval(function () {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (items) {
          if (!items) { return; }
          var live = 0;
          items.forEach(function (item) {
            var row = table.querySelector("[data-send-id='" + item.id + "']");
            if (row) { setProgress(row, item); }
            if (item.live) { live += 1; }
          });
          if (!live) { window.clearInterval(timer); }
        })
        .catch(function () {});
    }, 3000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    bindUpload(document);
    pollDetail();
    pollList();
  });
})();
