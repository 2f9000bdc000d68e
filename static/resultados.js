// Server5K live results page. No framework, no build step: one file served by the server.
// The page listens on the public read-only socket /ws/resultados/{id}/; every message there is
// a full snapshot of the standings, so a missed message is never a problem, and after a
// reconnect the first snapshot brings the page up to date. Every snapshot also rebuilds the
// printout (#impresion, shown only on paper): one sheet per category, podium first.
// When the socket is refused or cut (a full server, a proxy without WebSockets, a bad network)
// the page asks for the standings every few seconds with If-None-Match (a 304 costs nothing,
// and any HTTP cache in front answers it), says so, and keeps trying the socket meanwhile.
(function () {
  'use strict';

  var ESTADOS = { programada: 'Programada', en_curso: 'En curso', finalizada: 'Finalizada' };

  // Shared with the console and the judge app (static/comun.js): JSON with bidirectional
  // controls taken out, the clock's digits, the reconnect backoff.
  var comun = window.Server5KComun;
  var plainJson = comun.plainJson, clockText = comun.clockText;
  var MESES = ['ene', 'feb', 'mar', 'abr', 'may', 'jun', 'jul', 'ago', 'sept', 'oct', 'nov', 'dic'];

  var root = document.getElementById('resultados');
  if (!root) { return; }
  var competenciaId = root.getAttribute('data-competencia');
  var tbody = document.querySelector('#clasificacion tbody');
  var estadoEl = document.getElementById('estado');
  var relojEl = document.getElementById('reloj');
  var relojEtiquetaEl = document.getElementById('reloj-etiqueta');
  var momentoEl = document.getElementById('momento');
  var enVivoEl = document.getElementById('en-vivo');
  var avisoEl = document.getElementById('aviso-conexion');
  var avisoTextoEl = document.getElementById('aviso-texto');
  var reintentoEl = document.getElementById('aviso-reintento');
  var actualizadoEl = document.getElementById('actualizado');
  var reglaEl = document.getElementById('regla');
  var oficialEl = document.getElementById('oficial');
  var trasFinalEl = document.getElementById('tras-final');
  var pestanasEl = document.getElementById('categorias');
  var impresionEl = document.getElementById('impresion');
  var qrImg = document.querySelector('#qr img');
  var csvEl = document.getElementById('csv');

  var competencia = null;
  var latest = null;       // the last standings received
  var categoria = new URLSearchParams(location.search).get('categoria');  // null: General
  var offsetMs = 0;        // server clock minus this device's clock
  var previous = {};       // equipo_id -> row signature, to flash rows that changed
  var socket = null;
  var retries = 0;
  var retryTimer = null;
  var etag = null;         // the validator of the standings shown (polling asks If-None-Match)
  var pollTimer = null;
  var polling = false;     // the socket is down: the page asks for the standings itself
  var POLL_MS = 3000;      // how often, with jitter (a cache in front answers most of them)

  // -- the venue's local time (race.timezone), whatever this device's zone ------------------------
  var zona = root.getAttribute('data-zona') || undefined;
  var partes;
  try {
    partes = new Intl.DateTimeFormat('en-US', {
      timeZone: zona, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric',
      hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'longOffset' });
  } catch (e) {  // an old browser: this device's zone
    partes = new Intl.DateTimeFormat('en-US', {
      hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric',
      hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short' });
  }

  function local(ms) {
    var out = {};
    partes.formatToParts(new Date(ms)).forEach(function (p) { out[p.type] = p.value; });
    var offset = (out.timeZoneName || 'GMT').replace('GMT', 'UTC');
    out.offset = offset === 'UTC' ? 'UTC+00:00' : offset;
    return out;
  }

  function fechaTexto(iso) {  // 6 dic 2026, 09:00 (UTC+01:00), as the server writes it
    var p = local(Date.parse(iso));
    return p.day + ' ' + MESES[Number(p.month) - 1] + ' ' + p.year + ', ' + p.hour + ':' +
      p.minute + ' (' + p.offset + ')';
  }

  function horaTexto(ms) {  // 10:23:45 (UTC+01:00)
    var p = local(ms);
    return p.hour + ':' + p.minute + ':' + p.second + ' (' + p.offset + ')';
  }

  // ``floorMs``: a time the server's clock had certainly reached (an answer's Date header).
  // Through a cache (nginx's micro-cache, a CDN) the body's server_time is when the server made
  // it, up to a few seconds before the answer left the cache, whose Date is now to the second:
  // the later of the two is the better clock.
  function setServerTime(iso, floorMs) {
    var server = Date.parse(iso);
    if (!isNaN(floorMs) && !(server >= floorMs)) { server = floorMs; }
    if (!isNaN(server)) { offsetMs = server - Date.now(); }
  }

  function clockMs(ms) {  // h:mm:ss.mmm, as the API writes times
    return clockText(ms) + '.' + ('00' + (ms % 1000)).slice(-3);
  }

  function tickClock() {
    if (!competencia || !competencia.started_at) {
      relojEl.hidden = true;
      relojEtiquetaEl.hidden = true;
      return;
    }
    var start = Date.parse(competencia.started_at);
    var end = competencia.finished_at ? Date.parse(competencia.finished_at) : Date.now() + offsetMs;
    relojEl.textContent = clockText(end - start);
    relojEl.hidden = false;
    relojEtiquetaEl.hidden = !competencia.finished_at;
  }

  function momento(c) {
    if (c.estado === 'finalizada') {
      return 'Finalizada a las ' + horaTexto(Date.parse(c.finished_at));
    }
    if (c.estado === 'en_curso') { return 'Salida a las ' + horaTexto(Date.parse(c.started_at)); }
    return c.fecha_hora ? 'Salida prevista: ' + fechaTexto(c.fecha_hora) :
      'Salida sin hora prevista';
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text === null ? '—' : String(text); }
    return node;
  }

  function cell(tr, cls, text) {
    var td = el('td', cls, text === undefined ? null : text);
    tr.appendChild(td);
    return td;
  }

  // The rows of the tab shown, and each one's position in it.
  function rowsOf(data, name) {
    if (name === null) { return data.clasificacion; }
    return data.clasificacion.filter(function (r) { return r.categoria === name; });
  }

  function positionOf(r, name) {
    return name === null ? r.posicion : r.posicion_categoria;
  }

  function score(r, regla) {  // what the rule compares, as people read it
    if (regla.tipo === 'puntos') { return r.puntos === null ? null : r.puntos + ' pts'; }
    if (regla.tipo === 'promedio') { return r.promedio; }
    return r.tiempo_total;
  }

  function renderTabs(data) {
    var names = data.categorias || [];
    if (categoria !== null && names.indexOf(categoria) < 0) { categoria = null; }
    pestanasEl.hidden = names.length === 0;
    pestanasEl.textContent = '';
    [null].concat(names).forEach(function (name) {
      var tab = el('button', 'pestana', name === null ? 'General' : name);
      tab.type = 'button';
      tab.setAttribute('role', 'tab');
      tab.setAttribute('aria-selected', String(name === categoria));
      tab.setAttribute('aria-controls', 'clasificacion');
      tab.addEventListener('click', function () {
        categoria = name;
        var url = new URL(location.href);
        if (name === null) { url.searchParams.delete('categoria'); }
        else { url.searchParams.set('categoria', name); }
        history.replaceState(null, '', url.toString());
        previous = {};  // a new tab is not a change of the standings
        render(latest);
      });
      pestanasEl.appendChild(tab);
    });
  }

  function render(data) {
    latest = data;
    competencia = data.competencia;
    var regla = data.regla;
    document.getElementById('nombre').textContent = competencia.nombre;
    document.title = competencia.nombre + ' · Resultados';
    estadoEl.textContent = ESTADOS[competencia.estado] || competencia.estado;
    estadoEl.className = 'estado estado-' + competencia.estado;
    oficialEl.textContent = competencia.oficial ? 'Resultados oficiales' : 'Resultados provisionales';
    oficialEl.className = 'oficial' + (competencia.oficial ? ' es-oficial' : '');
    momentoEl.textContent = momento(competencia);
    var late = data.registros_tras_final || 0;
    trasFinalEl.hidden = !late;
    trasFinalEl.textContent = late === 1 ? '1 tiempo llegó después del final' :
      late + ' tiempos llegaron después del final';
    reglaEl.textContent = regla.texto;
    renderTabs(data);
    csvEl.href = '/api/competencias/' + competenciaId + '/resultados/?format=csv' +
      (categoria === null ? '' : '&categoria=' + encodeURIComponent(categoria));
    tickClock();

    var puntos = regla.tipo === 'puntos';
    document.querySelector('#clasificacion th.puntos').hidden = !puntos;
    root.setAttribute('data-regla', regla.tipo);
    var fragment = document.createDocumentFragment();
    var seen = {};
    var rows = rowsOf(data, categoria);
    rows.forEach(function (r) {
      var tr = document.createElement('tr');
      tr.setAttribute('data-equipo-id', r.equipo_id);
      if (!r.registros_contados) { tr.className = 'sin-registros'; }
      var estadoEquipo = r.estado && r.estado !== 'ok' ? r.estado.toUpperCase() : null;
      var pos = positionOf(r, categoria);
      cell(tr, 'pos', estadoEquipo || (pos === null ? '–' : pos));
      var equipo = cell(tr, 'equipo', '');
      var enlace = document.createElement('a');
      enlace.href = '/competencias/' + competenciaId + '/equipos/' + r.equipo_id + '/';
      enlace.textContent = r.equipo;
      equipo.appendChild(enlace);
      if (r.categoria && categoria === null) {
        equipo.appendChild(el('span', 'categoria', r.categoria));
      }
      // Phones hide the dorsal, best and mean columns and show them here, one per line.
      var detalle = el('span', 'detalle');
      [['Dorsal', r.dorsal], ['Mejor', r.mejor], ['Promedio', r.promedio]].forEach(function (pair) {
        if (pair[1] === null || pair[1] === undefined) { return; }
        detalle.appendChild(el('span', '', pair[0] + ' ' + pair[1]));
      });
      equipo.appendChild(detalle);
      if (r.penalizacion_ms) {
        equipo.appendChild(el('span', 'penalizacion', 'Penalización ' +
          (r.penalizacion_ms > 0 ? '+' : '−') + clockMs(Math.abs(r.penalizacion_ms))));
      }
      cell(tr, 'dorsal', r.dorsal);
      cell(tr, 'contados', r.registros_contados);
      if (puntos) {
        var td = cell(tr, 'puntos', r.puntos);
        if (r.puestos.length) { td.title = 'Puestos: ' + r.puestos.join(', '); }
      }
      cell(tr, 'total', r.tiempo_total);
      cell(tr, 'mejor', r.mejor);
      cell(tr, 'promedio', r.promedio);
      var signature = [pos, r.registros_contados, r.tiempo_total_ms, r.puntos, r.estado].join('|');
      if (previous[r.equipo_id] !== undefined && previous[r.equipo_id] !== signature) {
        tr.classList.add('cambio');
      }
      seen[r.equipo_id] = signature;
      fragment.appendChild(tr);
    });
    if (!rows.length) {
      var empty = document.createElement('tr');
      cell(empty, 'vacio', data.clasificacion.length ? 'Esta categoría no tiene equipos.' :
        'Esta competencia todavía no tiene equipos.').colSpan = 8;
      fragment.appendChild(empty);
    }
    previous = seen;
    tbody.textContent = '';
    tbody.appendChild(fragment);
    actualizadoEl.textContent = 'Actualizado a las ' + horaTexto(Date.now() + offsetMs);
    renderPrint(data);
    root.setAttribute('data-version', String(Number(root.getAttribute('data-version') || 0) + 1));
  }

  // -- the printout: per category (General first), the podium, then the whole table -------------
  function renderPrint(data) {
    var regla = data.regla;
    var names = [null].concat(data.categorias || []);
    var fragment = document.createDocumentFragment();
    names.forEach(function (name) {
      var rows = rowsOf(data, name);
      var hoja = el('section', 'hoja');
      hoja.setAttribute('data-categoria', name === null ? '' : name);
      var cabecera = el('header', 'hoja-cabecera');
      if (qrImg) {
        var qr = el('img', 'hoja-qr');
        qr.src = qrImg.src;
        qr.alt = qrImg.alt;
        cabecera.appendChild(qr);
      }
      cabecera.appendChild(el('h1', '', data.competencia.nombre));
      cabecera.appendChild(el('h2', '', name === null ? 'Clasificación general' : 'Categoría ' + name));
      cabecera.appendChild(el('p', 'hoja-oficial', (data.competencia.oficial ? 'Resultados oficiales' :
        'Resultados provisionales') + ' · ' + momento(data.competencia)));
      cabecera.appendChild(el('p', 'hoja-regla', 'Regla: ' + regla.texto));
      cabecera.appendChild(el('p', 'hoja-impreso', 'Impreso el ' +
        fechaTexto(new Date(Date.now() + offsetMs).toISOString())));
      hoja.appendChild(cabecera);

      var podio = el('ol', 'podio');
      rows.forEach(function (r) {
        var pos = positionOf(r, name);
        if (pos === null || pos > 3 || r.estado !== 'ok') { return; }
        var li = el('li', 'podio-' + pos);
        li.appendChild(el('span', 'podio-puesto', pos + '.º'));
        li.appendChild(el('span', 'podio-equipo', r.equipo));
        li.appendChild(el('span', 'podio-marca', score(r, regla)));
        podio.appendChild(li);
      });
      if (podio.childNodes.length) { hoja.appendChild(podio); }

      var tabla = el('table', 'hoja-tabla');
      var head = el('tr');
      var puntos = regla.tipo === 'puntos';
      var columnas = [['pos', 'Pos.'], ['equipo', 'Equipo'], ['dorsal', 'Dorsal'],
        ['contados', 'Llegadas'], ['total', puntos ? 'Puntos' : regla.tipo === 'promedio' ?
          'Promedio' : 'Tiempo total']];
      if (puntos) { columnas.push(['puestos', 'Puestos']); }
      columnas.push(['mejor', 'Mejor']);
      columnas.forEach(function (c) { head.appendChild(el('th', c[0], c[1])); });
      var thead = el('thead');
      thead.appendChild(head);
      tabla.appendChild(thead);
      var body = el('tbody');
      rows.forEach(function (r) {
        var tr = el('tr');
        var pos = positionOf(r, name);
        cell(tr, 'pos', r.estado !== 'ok' ? r.estado.toUpperCase() : pos === null ? '–' : pos);
        cell(tr, 'equipo', r.equipo + (r.penalizacion_ms ? ' (penalización ' +
          (r.penalizacion_ms > 0 ? '+' : '−') + clockMs(Math.abs(r.penalizacion_ms)) + ')' : ''));
        cell(tr, 'dorsal', r.dorsal);
        cell(tr, 'contados', r.registros_contados);
        cell(tr, 'total', score(r, regla));
        if (puntos) {  // the counted places, then those that only displaced
          var n = regla.contados;
          cell(tr, 'puestos', r.puestos.slice(0, n).join(' + ') +
            (r.puestos.length > n ? ' (' + r.puestos.slice(n).join(', ') + ')' : ''));
        }
        cell(tr, 'mejor', r.mejor);
        body.appendChild(tr);
      });
      if (!rows.length) {
        var vacia = el('tr');
        cell(vacia, 'vacio', 'Sin equipos.').colSpan = columnas.length;
        body.appendChild(vacia);
      }
      tabla.appendChild(body);
      hoja.appendChild(tabla);
      fragment.appendChild(hoja);
    });
    impresionEl.textContent = '';
    impresionEl.appendChild(fragment);
  }

  // The standings over plain HTTP: true when they are shown (new, or unchanged: 304), false
  // when the server could not be reached.
  function fetchOnce() {
    var headers = etag ? { 'If-None-Match': etag } : {};
    return fetch('/api/competencias/' + competenciaId + '/resultados/',
      { cache: 'no-store', headers: headers })
      .then(function (response) {
        if (response.status === 304) { return null; }
        if (!response.ok) { throw new Error('HTTP ' + response.status); }
        var tag = response.headers.get('ETag');
        var dated = Date.parse(response.headers.get('Date') || '');
        return response.text().then(plainJson).then(function (data) {
          return { data: data, tag: tag, dated: dated };
        });
      })
      .then(function (answer) {
        if (answer) {
          setServerTime(answer.data.server_time, answer.dated);
          render(answer.data);
          etag = answer.tag;
        } else {
          actualizadoEl.textContent = 'Actualizado a las ' + horaTexto(Date.now() + offsetMs);
        }
        return true;
      })
      .catch(function () { return false; });
  }

  // Without the socket: the standings every POLL_MS (with jitter), until the socket is back.
  function poll() {
    clearTimeout(pollTimer);
    if (!polling) { return; }
    if (document.hidden) {  // a tab nobody looks at asks for nothing (it asks once shown)
      pollTimer = setTimeout(poll, POLL_MS);
      return;
    }
    fetchOnce().then(function (ok) {
      if (!polling) { return; }
      showState(ok ? 'sondeo' : 'perdida');
      pollTimer = setTimeout(poll, POLL_MS * (0.75 + Math.random() * 0.5));
    });
  }

  function startPolling() {
    if (polling) { return; }
    polling = true;
    poll();
  }

  function stopPolling() {
    polling = false;
    clearTimeout(pollTimer);
  }

  // en-vivo: the socket is open; sondeo: no socket, the page asks every few seconds;
  // perdida: neither answers (the standings shown may be old).
  function showState(state) {
    enVivoEl.hidden = state !== 'en-vivo';
    avisoEl.hidden = state === 'en-vivo';
    avisoEl.className = 'aviso' + (state === 'sondeo' ? ' aviso-sondeo' : '');
    avisoTextoEl.textContent = state === 'sondeo' ?
      'Sin conexión en vivo: los resultados se actualizan cada ' + Math.round(POLL_MS / 1000) +
      ' s.' : 'Se perdió la conexión en vivo: los resultados pueden estar desactualizados.';
    root.setAttribute('data-conexion', state);
  }

  function scheduleReconnect() {
    // Backoff 1, 2, 4, 8, 15, 15... seconds (up to 60 while polling works), with jitter so a
    // thousand phones do not return at once.
    var ceiling = root.getAttribute('data-conexion') === 'sondeo' ? 60000 : 15000;
    var delay = comun.backoff(retries, ceiling);
    retries += 1;
    var at = Date.now() + delay;
    clearInterval(retryTimer);
    function countdown() {
      var left = Math.max(0, Math.ceil((at - Date.now()) / 1000));
      reintentoEl.textContent = left > 0 ? 'Reintentando la conexión en vivo en ' + left + ' s…' :
        'Reintentando…';
    }
    countdown();
    retryTimer = setInterval(countdown, 500);
    setTimeout(function () { clearInterval(retryTimer); connect(); }, delay);
  }

  function connect() {
    var scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    try {
      socket = new WebSocket(scheme + location.host + '/ws/resultados/' + competenciaId + '/');
    } catch (e) {
      startPolling();
      scheduleReconnect();
      return;
    }
    socket.onopen = function () { retries = 0; stopPolling(); showState('en-vivo'); };
    socket.onmessage = function (event) {
      var msg;
      try { msg = plainJson(event.data); } catch (e) { return; }
      if (msg.type === 'conexion.establecida') { setServerTime(msg.data.server_time); }
      else if (msg.type === 'resultados') { etag = null; render(msg.data); }
    };
    socket.onclose = function () {
      socket = null;
      if (!polling) { showState('perdida'); }
      startPolling();
      scheduleReconnect();
    };
  }

  document.addEventListener('visibilitychange', function () {
    if (!document.hidden && polling) { poll(); }
  });
  document.getElementById('imprimir').addEventListener('click', function () { window.print(); });
  window.addEventListener('beforeprint', function () { if (latest) { renderPrint(latest); } });
  fetchOnce();
  connect();
  setInterval(tickClock, 250);
}());
