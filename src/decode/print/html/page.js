// amqp-rpc decode --html: builds the page from the JSON in #data. Every string from the capture
// goes into the DOM as text (textContent, createTextNode), never as markup.
(function () {
  'use strict';
  var status = document.getElementById('status');
  var failed = false;
  function fail(message) {
    failed = true;
    status.dataset.state = 'error';
    status.dataset.error = String(message);
    status.textContent = 'error: ' + message;
  }
  window.addEventListener('error', function (e) { fail(e.message || 'script error'); });

  var SVG = 'http://www.w3.org/2000/svg';
  var COL = 230, ROW = 22, TOP = 6, HEAD = 34, LEFT = 86, CHAR = 6.1;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function fit(text, width) {
    var n = Math.max(4, Math.floor(width / CHAR));
    return text.length > n ? text.slice(0, n - 1) + '…' : text;
  }
  function fmt(ms) { return ms === null || ms === undefined ? '–' : ms.toFixed(3); }

  var detailTitle = document.getElementById('detail-title');
  var detailText = document.getElementById('detail-text');
  function show(title, text) {
    detailTitle.textContent = title;
    detailText.textContent = text;
  }

  var arrowNodes = [];
  var callRows = {};
  var selectedArrow = null;
  function selectArrow(data, i, scroll) {
    if (selectedArrow) selectedArrow.classList.remove('selected');
    selectedArrow = arrowNodes[i];
    if (!selectedArrow) return;
    selectedArrow.classList.add('selected');
    var a = data.arrows[i];
    var from = data.peers[a.f] ? data.peers[a.f].name : '?';
    var to = data.peers[a.o] ? data.peers[a.o].name : '?';
    var when = a.t === null ? '' : ', +' + a.t.toFixed(6) + ' s';
    show('Packet ' + a.p + ', stream ' + a.s + ', channel ' + a.c + when,
      from + ' → ' + to + '\n' + a.l + '\n\n' + a.d);
    if (scroll) scrollToArrow(i);
  }

  // Scroll the diagram's own box (not the window) to centre arrow i.
  function scrollToArrow(i) {
    var box = document.getElementById('flow');
    box.scrollTop = Math.max(0, HEAD + TOP + i * ROW - box.clientHeight / 2);
  }

  function drawFlow(data) {
    var box = document.getElementById('flow');
    var cols = data.peers.length;
    var width = LEFT + Math.max(cols, 1) * COL + 20;
    var height = TOP + data.arrows.length * ROW + 16;
    function x(col) { return LEFT + COL / 2 + col * COL; }
    // The peers' names stay in view: a header of their own, sticky at the top of the scrolling box.
    var head = svg('svg', { width: width, height: HEAD, class: 'flow-head' });
    data.peers.forEach(function (p, i) {
      var g = svg('g', { class: 'peer' + (p.broker ? ' broker' : '') });
      g.appendChild(svg('rect', { x: x(i) - COL / 2 + 8, y: 5, width: COL - 16, height: 24, rx: 4 }));
      var t = svg('text', { x: x(i), y: 21, 'text-anchor': 'middle' }, fit(p.name, COL - 24));
      t.appendChild(svg('title', {}, p.name));
      g.appendChild(t);
      head.appendChild(g);
    });
    head.appendChild(svg('text', { class: 'time', x: LEFT - 8, y: 21, 'text-anchor': 'end' }, 'time (s)'));
    var headBox = el('div', { class: 'flow-head-box' });
    headBox.appendChild(head);
    box.appendChild(headBox);
    var root = svg('svg', { width: width, height: height, viewBox: '0 0 ' + width + ' ' + height, id: 'flow-svg' });
    var defs = svg('defs');
    ['normal', 'error', 'return', 'malformed'].forEach(function (k) {
      var m = svg('marker', { id: 'head-' + k, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
      var colour = getComputedStyle(document.documentElement).getPropertyValue('--' + k).trim() || '#333';
      m.appendChild(svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: colour }));
      defs.appendChild(m);
    });
    root.appendChild(defs);
    data.peers.forEach(function (p, i) {
      root.appendChild(svg('line', { class: 'life', x1: x(i), y1: 0, x2: x(i), y2: height }));
    });
    data.arrows.forEach(function (a, i) {
      var y = TOP + i * ROW + 14;
      var g = svg('g', { class: 'arrow ' + a.k, 'data-i': i, 'data-method': a.m ? '1' : '0' });
      g.appendChild(svg('rect', { class: 'hit', x: 0, y: y - 14, width: width, height: ROW }));
      g.appendChild(svg('text', { class: 'time', x: LEFT - 8, y: y + 3, 'text-anchor': 'end' },
        a.t === null ? '#' + a.p : a.t.toFixed(6)));
      var x1 = x(a.f === null ? 0 : a.f), x2 = x(a.o === null ? 0 : a.o);
      if (x1 === x2) x2 = x1 + COL / 3;
      g.appendChild(svg('line', { x1: x1, y1: y, x2: x2, y2: y, 'marker-end': 'url(#head-' + a.k + ')' }));
      var label = svg('text', { class: 'label', x: (x1 + x2) / 2, y: y - 4, 'text-anchor': 'middle' },
        fit(a.l, Math.abs(x2 - x1) + COL * 0.6));
      label.appendChild(svg('title', {}, a.l));
      g.appendChild(label);
      g.addEventListener('click', function () { selectArrow(data, i, false); });
      root.appendChild(g);
      arrowNodes.push(g);
    });
    box.appendChild(root);
    if (data.dropped > 0) {
      document.getElementById('flow-more').textContent = data.dropped + ' more frames not drawn.';
    }
  }

  function drawCalls(data) {
    var body = document.querySelector('#calls tbody');
    var longest = 0;
    data.calls.forEach(function (c) {
      var l = c.lat;
      var sum = (l.to_server || 0) + (l.server || 0) + (l.to_client || 0);
      longest = Math.max(longest, l.total || 0, sum);
    });
    var selectedRow = null;
    data.calls.forEach(function (c) {
      var tr = el('tr', { class: 'call', 'data-call': c.n });
      tr.appendChild(el('td', { class: 'num' }, c.n));
      var q = el('td', { class: 'queue' }, c.q === null ? '?' : c.q);
      q.title = c.q === null ? '' : c.q;
      tr.appendChild(q);
      tr.appendChild(el('td', { class: 'mono' }, (c.cl || '?') + ' → ' + (c.sv || '?')));
      tr.appendChild(el('td', { class: 'mono' }, c.id));
      var bodies = '"' + c.rq + '"' + (c.rp === null ? '' : ' → "' + c.rp + '"');
      var b = el('td', { class: 'mono bodies' }, bodies);
      b.title = bodies;
      tr.appendChild(b);
      var outcome = c.o + (c.e ? ' ' + c.e : '') + (c.dup ? ' (+' + c.dup + ' duplicate)' : '');
      tr.appendChild(el('td', { class: 'outcome-' + c.o }, outcome));
      tr.appendChild(el('td', { class: 'num' }, fmt(c.lat.total)));
      var bar = el('td', {});
      var W = 140, H = 12;
      var s = svg('svg', { width: W, height: H, class: 'bar' });
      var x = 0;
      [['to_server', 'to server'], ['server', 'server'], ['to_client', 'to client']].forEach(function (leg) {
        var v = c.lat[leg[0]];
        if (v === null || longest <= 0) return;
        var w = Math.max(1, (v / longest) * W);
        var r = svg('rect', { class: leg[0], x: x, y: 1, width: w, height: H - 2 });
        r.appendChild(svg('title', {}, leg[1] + ': ' + fmt(v) + ' ms'));
        s.appendChild(r);
        x += w;
      });
      bar.appendChild(s);
      tr.appendChild(bar);
      tr.addEventListener('click', function () { selectCall(); });
      function selectCall() {
        if (selectedRow) selectedRow.classList.remove('selected');
        selectedRow = tr;
        tr.classList.add('selected');
        arrowNodes.forEach(function (g) { g.classList.remove('hl'); });
        var first = null;
        c.legs.forEach(function (i) {
          if (i === null || !arrowNodes[i]) return;
          arrowNodes[i].classList.add('hl');
          if (first === null) first = i;
        });
        if (first !== null) scrollToArrow(first);
        show('Call #' + c.n + ' (--rpc --json)', JSON.stringify(JSON.parse(c.json), null, 2));
      }
      callRows[c.n] = selectCall;
      body.appendChild(tr);
    });
    if (data.calls.length === 0) {
      var tr = el('tr', {});
      tr.appendChild(el('td', { colspan: 8 }, 'No RPC calls in this capture.'));
      body.appendChild(tr);
    }
    if (data.calls_dropped > 0) {
      document.getElementById('calls-more').textContent = data.calls_dropped + ' more calls not listed (in the summary).';
    }
  }

  try {
    var data = JSON.parse(document.getElementById('data').textContent);
    document.getElementById('title').textContent = data.title;
    document.getElementById('counts').textContent = data.frames + ' frames, ' + data.errors +
      ' malformed, ' + data.peers.length + ' peers, ' + (data.calls.length + data.calls_dropped) + ' RPC calls';
    drawCalls(data);
    drawFlow(data);
    document.getElementById('summary').textContent = data.summary;
    // #call=N selects a call, #arrow=N an arrow: links into the report.
    var m = /^#(call|arrow)=(\d+)$/.exec(location.hash);
    if (m && m[1] === 'call' && callRows[m[2]]) callRows[m[2]]();
    if (m && m[1] === 'arrow') selectArrow(data, Number(m[2]), true);
    if (!failed) {
      var methods = document.querySelectorAll('#flow-svg g.arrow[data-method="1"]').length;
      status.dataset.arrows = String(arrowNodes.length);
      status.dataset.methodArrows = String(methods);
      status.dataset.calls = String(document.querySelectorAll('#calls tr.call').length);
      status.dataset.state = 'ok';
      status.textContent = 'rendered ' + methods + ' method arrows, ' + status.dataset.calls + ' calls';
    }
  } catch (e) {
    fail(e && e.message ? e.message : e);
  }
})();
