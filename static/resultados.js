// Server5K live results page. No framework, no build step: one file served by the server.
// The page listens on the public read-only socket /ws/resultados/{id}/; every message there is
// a full snapshot of the standings, so a missed message is never a problem, and after a
// reconnect the first snapshot brings the page up to date.
(function () {
  'use strict';

  var ESTADOS = { programada: 'Programada', en_curso: 'En curso', finalizada: 'Finalizada' };

  // Dates on the index page, shown in the reader's local time.
  Array.prototype.forEach.call(document.querySelectorAll('time[datetime]'), function (el) {
    var when = Date.parse(el.getAttribute('datetime'));
    if (!isNaN(when)) {
      el.textContent = new Date(when).toLocaleString('es', { dateStyle: 'medium', timeStyle: 'short' });
    }
  });

  var root = document.getElementById('resultados');
  if (!root) { return; }
  var competenciaId = root.getAttribute('data-competencia');
  var tbody = document.querySelector('#clasificacion tbody');
  var estadoEl = document.getElementById('estado');
  var relojEl = document.getElementById('reloj');
  var enVivoEl = document.getElementById('en-vivo');
  var avisoEl = document.getElementById('aviso-conexion');
  var reintentoEl = document.getElementById('aviso-reintento');
  var actualizadoEl = document.getElementById('actualizado');
  var reglaEl = document.getElementById('regla');
  var oficialEl = document.getElementById('oficial');
  var trasFinalEl = document.getElementById('tras-final');

  var competencia = null;
  var offsetMs = 0;        // server clock minus this device's clock
  var previous = {};       // equipo_id -> row signature, to flash rows that changed
  var socket = null;
  var retries = 0;
  var retryTimer = null;

  function setServerTime(iso) {
    var server = Date.parse(iso);
    if (!isNaN(server)) { offsetMs = server - Date.now(); }
  }

  function pad(n) { return (n < 10 ? '0' : '') + n; }

  function clockMs(ms) {  // h:mm:ss.mmm, as the API writes times
    return clockText(ms) + '.' + ('00' + (ms % 1000)).slice(-3);
  }

  function clockText(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    return Math.floor(s / 3600) + ':' + pad(Math.floor(s / 60) % 60) + ':' + pad(s % 60);
  }

  function tickClock() {
    if (!competencia || !competencia.started_at) {
      relojEl.hidden = true;
      return;
    }
    var start = Date.parse(competencia.started_at);
    var end = competencia.finished_at ? Date.parse(competencia.finished_at) : Date.now() + offsetMs;
    relojEl.textContent = clockText(end - start);
    relojEl.hidden = false;
  }

  function cell(tr, cls, text) {
    var td = document.createElement('td');
    td.className = cls;
    td.textContent = text === null || text === undefined ? '—' : String(text);
    tr.appendChild(td);
    return td;
  }

  function render(data) {
    competencia = data.competencia;
    document.getElementById('nombre').textContent = competencia.nombre;
    document.title = competencia.nombre + ' · Resultados';
    estadoEl.textContent = ESTADOS[competencia.estado] || competencia.estado;
    estadoEl.className = 'estado estado-' + competencia.estado;
    oficialEl.textContent = competencia.oficial ? 'Resultados oficiales' : 'Resultados provisionales';
    oficialEl.className = 'oficial' + (competencia.oficial ? ' es-oficial' : '');
    var late = data.registros_tras_final || 0;
    trasFinalEl.hidden = !late;
    trasFinalEl.textContent = late === 1 ? '1 tiempo llegó después del final' :
      late + ' tiempos llegaron después del final';
    reglaEl.textContent = 'Puntúan los ' + data.registros_por_equipo + ' mejores tiempos de cada ' +
      'equipo: primero quien tenga más llegadas, luego el menor tiempo total; igual total, igual puesto.';
    tickClock();

    var fragment = document.createDocumentFragment();
    var seen = {};
    data.clasificacion.forEach(function (r) {
      var tr = document.createElement('tr');
      tr.setAttribute('data-equipo-id', r.equipo_id);
      if (!r.registros_contados) { tr.className = 'sin-registros'; }
      var estadoEquipo = r.estado && r.estado !== 'ok' ? r.estado.toUpperCase() : null;
      cell(tr, 'pos', estadoEquipo || (r.posicion === null ? '–' : r.posicion));
      var equipo = cell(tr, 'equipo', '');
      var enlace = document.createElement('a');
      enlace.href = '/competencias/' + competenciaId + '/equipos/' + r.equipo_id + '/';
      enlace.textContent = r.equipo;
      equipo.appendChild(enlace);
      // Phones hide the dorsal, best and mean columns and show them here, one per line.
      var detalle = document.createElement('span');
      detalle.className = 'detalle';
      [['Dorsal', r.dorsal], ['Mejor', r.mejor], ['Promedio', r.promedio]].forEach(function (pair) {
        if (pair[1] === null || pair[1] === undefined) { return; }
        var line = document.createElement('span');
        line.textContent = pair[0] + ' ' + pair[1];
        detalle.appendChild(line);
      });
      equipo.appendChild(detalle);
      if (r.penalizacion_ms) {
        var pen = document.createElement('span');
        pen.className = 'penalizacion';
        pen.textContent = 'Penalización ' + (r.penalizacion_ms > 0 ? '+' : '−') +
          clockMs(Math.abs(r.penalizacion_ms));
        equipo.appendChild(pen);
      }
      cell(tr, 'dorsal', r.dorsal);
      cell(tr, 'contados', r.registros_contados);
      cell(tr, 'total', r.tiempo_total);
      cell(tr, 'mejor', r.mejor);
      cell(tr, 'promedio', r.promedio);
      var signature = [r.posicion, r.registros_contados, r.tiempo_total_ms, r.estado].join('|');
      if (previous[r.equipo_id] !== undefined && previous[r.equipo_id] !== signature) {
        tr.classList.add('cambio');
      }
      seen[r.equipo_id] = signature;
      fragment.appendChild(tr);
    });
    if (!data.clasificacion.length) {
      var empty = document.createElement('tr');
      cell(empty, 'vacio', 'Esta competencia todavía no tiene equipos.').colSpan = 7;
      fragment.appendChild(empty);
    }
    previous = seen;
    tbody.textContent = '';
    tbody.appendChild(fragment);
    actualizadoEl.textContent = 'Actualizado a las ' + new Date().toLocaleTimeString('es');
    root.setAttribute('data-version', String(Number(root.getAttribute('data-version') || 0) + 1));
  }

  function fetchOnce() {
    return fetch('/api/competencias/' + competenciaId + '/resultados/', { cache: 'no-store' })
      .then(function (response) {
        if (!response.ok) { throw new Error('HTTP ' + response.status); }
        return response.json();
      })
      .then(function (data) {
        setServerTime(data.server_time);
        render(data);
      })
      .catch(function () { /* the socket (or its retries) will bring the standings */ });
  }

  function showOnline(online) {
    enVivoEl.hidden = !online;
    avisoEl.hidden = online;
    root.setAttribute('data-conexion', online ? 'en-vivo' : 'perdida');
  }

  function scheduleReconnect() {
    // Backoff 1, 2, 4, 8, 15, 15... seconds, with jitter so a thousand phones do not return at once.
    var delay = Math.min(15000, 1000 * Math.pow(2, retries)) * (0.75 + Math.random() * 0.5);
    retries += 1;
    var at = Date.now() + delay;
    clearInterval(retryTimer);
    function countdown() {
      var left = Math.max(0, Math.ceil((at - Date.now()) / 1000));
      reintentoEl.textContent = left > 0 ? 'Reintentando en ' + left + ' s…' : 'Reintentando…';
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
      showOnline(false);
      scheduleReconnect();
      return;
    }
    socket.onopen = function () { retries = 0; showOnline(true); };
    socket.onmessage = function (event) {
      var msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      if (msg.type === 'conexion.establecida') { setServerTime(msg.data.server_time); }
      else if (msg.type === 'resultados') { render(msg.data); }
    };
    socket.onclose = function () {
      socket = null;
      showOnline(false);
      scheduleReconnect();
    };
  }

  fetchOnce();
  connect();
  setInterval(tickClock, 250);
}());
