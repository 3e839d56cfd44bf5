// The dashboard's chart: payments per day (bars) and revenue kept per currency (lines).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("dashboard-data").textContent);
  var canvas = document.getElementById("payments-chart");
  if (!canvas || typeof Chart === "undefined") return;
  var datasets = [
    { type: "bar", label: "Payments", data: data.payments, yAxisID: "count", backgroundColor: "#79aec8" },
    { type: "bar", label: "Succeeded", data: data.succeeded, yAxisID: "count", backgroundColor: "#417690" },
  ];
  Object.keys(data.revenue).forEach(function (currency) {
    datasets.push({ type: "line", label: "Revenue " + currency, data: data.revenue[currency], yAxisID: "money", borderColor: "#e8a33d" });
  });
  canvas.chart = new Chart(canvas, {
    data: { labels: data.days, datasets: datasets },
    options: {
      animation: false,
      scales: {
        count: { type: "linear", position: "left", beginAtZero: true, ticks: { precision: 0 } },
        money: { type: "linear", position: "right", beginAtZero: true, grid: { drawOnChartArea: false } },
      },
    },
  });
})();
