/* Recipes site: the landing page's tag filter and sortable tables.
 * Plain JavaScript, no library, nothing loaded from elsewhere. */
(function () {
  "use strict";

  /* Tag filter: a card stays visible when it carries at least one selected tag;
   * with no tag selected every card is shown. */
  function setUpTagFilter(filter) {
    var buttons = Array.prototype.slice.call(filter.querySelectorAll("button.recipe-tag-button"));
    var clear = filter.querySelector("button.recipe-tag-clear");
    var cards = Array.prototype.slice.call(document.querySelectorAll("div.recipe-card[data-tags]"));

    function apply() {
      var selected = buttons
        .filter(function (b) { return b.getAttribute("aria-pressed") === "true"; })
        .map(function (b) { return b.dataset.tag; });
      cards.forEach(function (card) {
        var tags = card.dataset.tags.split(/\s+/).filter(Boolean);
        var show = selected.length === 0 || selected.some(function (t) { return tags.indexOf(t) !== -1; });
        card.hidden = !show;
      });
      if (clear) { clear.hidden = selected.length === 0; }
    }

    buttons.forEach(function (button) {
      button.addEventListener("click", function () {
        var pressed = button.getAttribute("aria-pressed") === "true";
        button.setAttribute("aria-pressed", pressed ? "false" : "true");
        apply();
      });
    });
    if (clear) {
      clear.addEventListener("click", function () {
        buttons.forEach(function (b) { b.setAttribute("aria-pressed", "false"); });
        apply();
        if (buttons.length) { buttons[0].focus(); }
      });
    }
    apply();
  }

  /* Sortable table: each column heading becomes a button; numbers sort as numbers. */
  function cellValue(row, index) {
    var text = row.cells[index] ? row.cells[index].textContent.trim() : "";
    var number = parseFloat(text.replace(/,/g, ""));
    return { text: text, number: /^-?[\d.,]+/.test(text) ? number : NaN };
  }

  function setUpSortableTable(table) {
    var body = table.tBodies[0];
    var headers = table.tHead ? Array.prototype.slice.call(table.tHead.rows[0].cells) : [];
    if (!body || !headers.length) { return; }
    headers.forEach(function (th, index) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "recipe-sort-button";
      while (th.firstChild) { button.appendChild(th.firstChild); }
      th.appendChild(button);
      button.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a, index), y = cellValue(b, index);
          var xn = isNaN(x.number), yn = isNaN(y.number);
          var order;
          if (!xn && !yn) { order = x.number - y.number; }
          else if (xn !== yn) { order = xn ? -1 : 1; }  /* "–" sorts below any number */
          else { order = x.text.localeCompare(y.text); }
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
        headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      });
    });
  }

  /* The theme's navigation toggles are <summary> elements holding only an icon;
   * give each one a name that says what it opens, for screen readers. */
  function nameNavigationToggles() {
    Array.prototype.forEach.call(document.querySelectorAll("details > summary"), function (summary) {
      if (summary.textContent.trim() || summary.hasAttribute("aria-label")) { return; }
      var link = summary.parentElement.parentElement.querySelector(":scope > a");
      var what = link ? link.textContent.trim() : "this section";
      summary.setAttribute("aria-label", "Show the pages in " + what);
    });
  }

  /* sphinx-gallery's section cards make the whole card one link and hide its
   * text with CSS, which leaves the link without a name for screen readers:
   * name it after the card's visible title. */
  function nameGalleryCards() {
    Array.prototype.forEach.call(document.querySelectorAll(".sphx-glr-thumbcontainer"), function (card) {
      var title = card.querySelector(".sphx-glr-thumbnail-title");
      var link = card.querySelector("a.reference.internal");
      if (title && link && !link.hasAttribute("aria-label")) {
        link.setAttribute("aria-label", title.textContent.trim());
      }
    });
  }

  function init() {
    nameNavigationToggles();
    nameGalleryCards();
    Array.prototype.forEach.call(document.querySelectorAll("div.recipe-tag-filter"), setUpTagFilter);
    Array.prototype.forEach.call(document.querySelectorAll("table.recipe-sortable"), setUpSortableTable);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
