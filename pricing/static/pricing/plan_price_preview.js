// The plan form's "Price in each zone": asks the server (the one pricing rule) for the price being
// typed, in every zone and for a chosen country, before the plan is saved.
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }
  ready(function () {
    var box = document.getElementById("zone-prices");
    var price = document.getElementById("id_price_cents");
    var currency = document.getElementById("id_currency");
    var country = document.getElementById("price-preview-country");
    var countryOut = document.getElementById("country-price");
    if (!box || !price) return;
    var timer = null;
    var asked = 0;
    function refresh() {
      var cents = (price.value || "").trim();
      if (!/^\d+$/.test(cents)) return;
      var query = new URLSearchParams({
        price_cents: cents,
        currency: (currency && currency.value) || "USD",
        country: (country && country.value) || "",
      });
      var mine = ++asked;
      fetch(box.dataset.previewUrl + "?" + query.toString(), { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (answer) {
          if (!answer || mine !== asked) return; // a later keystroke's answer wins
          box.innerHTML = answer.html;
          box.dataset.priceCents = cents;
          if (countryOut) countryOut.textContent = answer.country || "";
        });
    }
    function later() {
      clearTimeout(timer);
      timer = setTimeout(refresh, 150);
    }
    [price, currency, country].forEach(function (input) {
      if (input) input.addEventListener("input", later);
    });
    refresh();
  });
})();
