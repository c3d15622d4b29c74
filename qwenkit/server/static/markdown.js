/* A small, safe Markdown renderer: every piece of text is HTML-escaped before any markup is added, and
   links are kept only for http(s), mailto and same-site relative URLs. Supports fenced code (with a
   minimal highlighter), inline code, headings, bold/italic, links, lists, block quotes, pipe tables,
   horizontal rules and paragraphs. Exposed as window.QKMarkdown = {render, escapeHtml, highlight}. */
(function () {
  "use strict";

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  var PY_KW = ("False None True and as assert async await break class continue def del elif else except " +
    "finally for from global if import in is lambda nonlocal not or pass raise return try while with yield " +
    "match case").split(" ");
  var JS_KW = ("break case catch class const continue debugger default delete do else export extends false " +
    "finally for function if import in instanceof let new null return super switch this throw true try " +
    "typeof var void while with yield async await undefined").split(" ");

  /* Tokenise the raw code, escape each token, wrap the interesting ones in spans. */
  function highlight(code, lang) {
    lang = (lang || "").toLowerCase();
    var js = /^(js|javascript|ts|typescript|json|c|cpp|java|go|rust)$/.test(lang);
    var py = !js && /^(|py|python|python3|ipython|sh|bash|shell)$/.test(lang);
    if (!js && !py) return escapeHtml(code);
    var kw = js ? JS_KW : PY_KW;
    var comment = js ? "\\/\\/[^\\n]*|\\/\\*[\\s\\S]*?\\*\\/" : "#[^\\n]*";
    var re = new RegExp("(" + comment + ")|(\"\"\"[\\s\\S]*?\"\"\"|'''[\\s\\S]*?'''|\"(?:\\\\.|[^\"\\\\\\n])*\"|" +
      "'(?:\\\\.|[^'\\\\\\n])*'|`(?:\\\\.|[^`\\\\])*`)|(\\b\\d[\\d_]*(?:\\.\\d+)?(?:e[+-]?\\d+)?\\b)|" +
      "([A-Za-z_][A-Za-z0-9_]*)(?=\\s*\\()|([A-Za-z_][A-Za-z0-9_]*)", "g");
    var out = "", last = 0, m;
    while ((m = re.exec(code)) !== null) {
      out += escapeHtml(code.slice(last, m.index));
      var t = escapeHtml(m[0]);
      if (m[1]) out += '<span class="tok-com">' + t + "</span>";
      else if (m[2]) out += '<span class="tok-str">' + t + "</span>";
      else if (m[3]) out += '<span class="tok-num">' + t + "</span>";
      else if (m[4]) out += kw.indexOf(m[4]) >= 0 ? '<span class="tok-kw">' + t + "</span>"
        : '<span class="tok-fn">' + t + "</span>";
      else out += kw.indexOf(m[5]) >= 0 ? '<span class="tok-kw">' + t + "</span>" : t;
      last = re.lastIndex;
    }
    return out + escapeHtml(code.slice(last));
  }

  function unescapeHtml(text) {
    return text.replace(/&(amp|lt|gt|quot|#39);/g, function (_, e) {
      return { amp: "&", lt: "<", gt: ">", quot: '"', "#39": "'" }[e];
    });
  }

  function safeUrl(url) {
    var u = url.trim();
    if (/^(https?:|mailto:)/i.test(u) || /^(\/(?!\/)|\.\/|#)/.test(u)) return u;
    return null;
  }

  /* Inline markup on already-escaped text (code spans are cut out first so nothing inside them changes). */
  function inline(escaped) {
    var codes = [];
    var s = escaped.replace(/`([^`\n]+)`/g, function (_, c) { codes.push(c); return "\u0000" + (codes.length - 1) + "\u0000"; });
    s = s.replace(/!\[([^\]\n]*)\]\(([^)\s]+)\)/g, function (all, alt, url) {
      var u = safeUrl(unescapeHtml(url));
      return u ? '<img alt="' + alt + '" src="' + escapeHtml(u) + '">' : all;
    });
    s = s.replace(/\[([^\]\n]+)\]\(([^)\s]+)\)/g, function (all, text, url) {
      var u = safeUrl(unescapeHtml(url));
      return u ? '<a href="' + escapeHtml(u) + '" target="_blank" rel="noopener noreferrer">' + text + "</a>" : all;
    });
    s = s.replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>").replace(/__([^_\n]+)__/g, "<strong>$1</strong>");
    s = s.replace(/(^|[^*\w])\*([^*\n]+)\*(?!\w)/g, "$1<em>$2</em>").replace(/(^|[^_\w])_([^_\n]+)_(?!\w)/g, "$1<em>$2</em>");
    s = s.replace(/~~([^~\n]+)~~/g, "<del>$1</del>");
    return s.replace(/\u0000(\d+)\u0000/g, function (_, i) { return "<code>" + codes[+i] + "</code>"; });
  }

  function isTableSep(line) { return /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/.test(line); }
  function cells(line) {
    return line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map(function (c) { return c.trim(); });
  }

  /* Render Markdown text to an HTML string that is safe to assign to innerHTML. */
  function render(text) {
    var lines = String(text).replace(/\u0000/g, "").replace(/\r\n?/g, "\n").split("\n");
    var html = [], para = [], i = 0;
    function flush() {
      if (para.length) { html.push("<p>" + inline(escapeHtml(para.join("\n"))).replace(/\n/g, "<br>") + "</p>"); }
      para = [];
    }
    while (i < lines.length) {
      var line = lines[i], m;
      if ((m = /^\s*(`{3,}|~{3,})\s*([\w+.-]*)/.exec(line))) {
        flush();
        var fence = m[1], lang = m[2], body = [];
        i++;
        while (i < lines.length && lines[i].trim().indexOf(fence) !== 0) { body.push(lines[i]); i++; }
        i++;
        html.push('<pre><code class="lang-' + escapeHtml(lang || "text") + '">' + highlight(body.join("\n"), lang) +
          "</code></pre>");
        continue;
      }
      if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
        flush();
        var level = Math.min(6, m[1].length + 2);  /* the page's own h1/h2 stay above the message's */
        html.push("<h" + level + ">" + inline(escapeHtml(m[2])) + "</h" + level + ">");
        i++; continue;
      }
      if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) { flush(); html.push("<hr>"); i++; continue; }
      if (/^\s*>/.test(line)) {
        flush();
        var quote = [];
        while (i < lines.length && /^\s*>/.test(lines[i])) { quote.push(lines[i].replace(/^\s*>\s?/, "")); i++; }
        html.push("<blockquote>" + render(quote.join("\n")) + "</blockquote>");
        continue;
      }
      if (line.indexOf("|") >= 0 && i + 1 < lines.length && isTableSep(lines[i + 1])) {
        flush();
        var head = cells(line), rows = [];
        i += 2;
        while (i < lines.length && lines[i].indexOf("|") >= 0 && lines[i].trim()) { rows.push(cells(lines[i])); i++; }
        html.push("<table><thead><tr>" + head.map(function (c) { return "<th>" + inline(escapeHtml(c)) + "</th>"; }).join("") +
          "</tr></thead><tbody>" + rows.map(function (r) {
            return "<tr>" + r.map(function (c) { return "<td>" + inline(escapeHtml(c)) + "</td>"; }).join("") + "</tr>";
          }).join("") + "</tbody></table>");
        continue;
      }
      if ((m = /^\s*([-*+]|\d+[.)])\s+/.exec(line))) {
        flush();
        var ordered = /\d/.test(m[1]), items = [];
        while (i < lines.length && (m = /^\s*([-*+]|\d+[.)])\s+(.*)$/.exec(lines[i])) && /\d/.test(m[1]) === ordered) {
          items.push("<li>" + inline(escapeHtml(m[2])) + "</li>");
          i++;
        }
        html.push((ordered ? "<ol>" : "<ul>") + items.join("") + (ordered ? "</ol>" : "</ul>"));
        continue;
      }
      if (!line.trim()) { flush(); i++; continue; }
      para.push(line);
      i++;
    }
    flush();
    return html.join("\n");
  }

  window.QKMarkdown = { render: render, escapeHtml: escapeHtml, highlight: highlight };
})();
