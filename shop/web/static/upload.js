// Straight-to-depot uploads: for a form marked data-upload, each chosen
// file is PUT to a presigned depot URL, its key is added as a hidden
// upload_key field, and the form is then submitted without the files.
// Without JavaScript the form posts the files to the shop instead.
(function () {
  "use strict";
  document.addEventListener("error", function (ev) {
    var t = ev.target;
    if (t && t.tagName === "IMG" && !t.dataset.failed) {
      t.dataset.failed = "1";
      t.classList.add("broken");
    }
  }, true);
  document.addEventListener("submit", async function (ev) {
    var form = ev.target;
    var kind = form.dataset.upload;
    if (!kind || !window.fetch || form.dataset.sent) return;
    var input = form.querySelector("input[type=file]");
    if (!input || input.files.length === 0) return;
    ev.preventDefault();
    var status = form.querySelector(".upload-status");
    var button = form.querySelector("button[type=submit]");
    var csrf = form.querySelector("input[name=csrf]").value;
    var say = function (msg) { if (status) status.textContent = msg; };
    if (button) button.disabled = true;
    try {
      for (var i = 0; i < input.files.length; i++) {
        var f = input.files[i];
        say("Uploading " + f.name + " (" + (i + 1) + " of " + input.files.length + ")…");
        var r = await fetch("/presign/" + kind, {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify({ content_type: f.type || "application/octet-stream" })
        });
        var up = await r.json();
        if (!r.ok) throw new Error(up.error || r.statusText);
        var put;
        try {
          put = await fetch(up.url, { method: "PUT", body: f, headers: { "Content-Type": f.type || "application/octet-stream" } });
        } catch (e) {
          throw new Error("image storage is unavailable right now, please try again in a moment");
        }
        if (!put.ok) throw new Error("image storage refused the upload (HTTP " + put.status + ")");
        var h = document.createElement("input");
        h.type = "hidden"; h.name = "upload_key"; h.value = up.key;
        form.appendChild(h);
      }
      input.disabled = true; // the files are in depot: do not send them again
      form.dataset.sent = "1";
      say("Saving…");
      form.submit();
    } catch (e) {
      say("Upload failed: " + e.message);
      if (button) button.disabled = false;
    }
  });
})();
