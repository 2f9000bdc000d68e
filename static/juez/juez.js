// Server5K judge app (JUEZ.md). No framework, no build step: one file served by the server, the
// same API every judge's app uses (PROTOCOL.md). There is no second way to store a time.
//
// A tap is written to IndexedDB before anything else, with its own id_registro, and stays there
// until the server's 201 lists that id (created or duplicates). The sender sends the oldest
// unsent taps first, one request at a time, retrying with a backoff that never passes a few
// seconds, and at once when the connection comes back.
//
// Times are on the server's clock: the offset between this page's monotonic clock
// (performance.now) and the server's comes from the socket's ping/pong (the sample with the
// shortest round trip of the recent ones); a tap's server time is its performance.now() plus
// that offset, and its tiempo that minus the race's started_at. The phone's own clock (Date) is
// only used to carry the offset across a reload until the first new sample.
//
// Where the tokens live: the refresh token and the judge's profile in localStorage (a judge must
// be able to reopen the app offline mid-race), the access token in memory only; neither ever
// goes into a URL (the socket opens with a single-use ticket). "Salir" forgets both. Every
// value from the server is written as text (textContent), never as markup.
(function () {
  'use strict';

  var MAXIMO = Number(document.body.dataset.maximo) || 15;
  var SESSION_KEY = 'server5k.juez.sesion';
  var CLOCK_KEY = 'server5k.juez.reloj';
  var LAST_USER_KEY = 'server5k.juez.usuario';
  var POLL_MS = 5000;            // the competition's state, read while the socket is down
  var POLL_CONNECTED_MS = 15000; // ... and now and then while it is up (teams may change)
  var MAX_BACKOFF_MS = 4000;     // the sender's and the socket's longest wait between tries
  var PING_EVERY_MS = 15000;     // a new clock sample this often (a burst on each connection)
  var SAMPLE_WINDOW_MS = 10 * 60 * 1000; // the best sample is chosen among these recent ones
  var PONG_TIMEOUT_MS = 10000;   // a socket whose pong (or handshake) does not come is dropped
  var REFUSED_PAUSE_MS = 10000;  // a team the server refused (no longer this judge's): again after
  var READBACK_MS = 60000;       // the teams' records read back from the server at most this often
  var SESSION_ID = newId();      // this page's life: performance.now() means nothing outside it

  var app = document.getElementById('app');
  var avisoEl = document.getElementById('aviso');
  var conexionEl = document.getElementById('conexion');
  var porEnviarEl = document.getElementById('por-enviar');
  var salirEl = document.getElementById('salir');
  var relojServidorEl = document.getElementById('reloj-servidor');

  function $(id) { return document.getElementById(id); }

  var el = window.Server5KComun.el;  // (static/comun.js)
  // Every text from the server (and what was kept of it) without bidirectional controls: a
  // team's name must not reorder what the page shows around it (static/comun.js).
  var plainJson = window.Server5KComun.plainJson;

  function showAviso(message) {
    avisoEl.textContent = message || '';
    avisoEl.hidden = !message;
  }

  // -- ids ----------------------------------------------------------------------------------------
  // crypto.randomUUID only exists in secure contexts; getRandomValues everywhere.
  function newId() {
    if (window.crypto && typeof crypto.randomUUID === 'function') { return crypto.randomUUID(); }
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  // -- times --------------------------------------------------------------------------------------
  // Shared with the console and the results pages (static/comun.js, kept on the phone too).
  var clockText = window.Server5KComun.clockText;

  var ZONA = document.body.dataset.zona || undefined;
  function venueTime(iso, withDate) {
    if (!iso) { return ''; }
    var options = withDate ? { dateStyle: 'medium', timeStyle: 'short' } : { timeStyle: 'medium' };
    try {
      return new Date(Date.parse(iso)).toLocaleString('es', Object.assign({ timeZone: ZONA }, options));
    } catch (e) {
      return new Date(Date.parse(iso)).toLocaleString('es', options);
    }
  }

  // -- the server's clock -------------------------------------------------------------------------
  // A sample: the ping left at t0 and its pong came back at t1 (performance.now()), the server
  // said S; the server's clock is performance.now() + off, give or take rtt / 2.
  var clock = { samples: [], best: null, stored: readJson(CLOCK_KEY) };

  function addSample(t0, t1, serverIso) {
    var s = Date.parse(serverIso);
    if (isNaN(s) || t1 < t0) { return; }
    clock.samples.push({ rtt: t1 - t0, off: s - (t0 + t1) / 2, at: t1,
      skew: Date.now() - performance.now() });
    var now = performance.now();
    clock.samples = clock.samples.filter(function (x) { return now - x.at < SAMPLE_WINDOW_MS; }).slice(-40);
    clock.best = clock.samples.reduce(function (a, b) { return !a || b.rtt < a.rtt ? b : a; }, null);
    // What survives a reload: the offset from the phone's own clock, however wrong it is.
    clock.stored = { wall: clock.best.off + performance.now() - Date.now(),
      unc: Math.ceil(clock.best.rtt / 2) + 1 };
    writeJson(CLOCK_KEY, clock.stored);
    resolvePending();
    renderClockInfo();
  }

  // Where a phone sleeps, its monotonic clock may stop while its wall clock goes on (or the wall
  // clock is set by hand): when the two part by more than a second, this page's samples are
  // dropped, the last offset is carried by the wall clock, and new samples are asked for.
  function checkClockJump() {
    if (!clock.best) { return; }
    if (Math.abs(Date.now() - performance.now() - clock.best.skew) > 1000) {
      clock.samples = [];
      clock.best = null;
      pingBurst();
      renderClockInfo();
    }
  }

  // The server's clock now, and how sure: {ms, unc, fuente} or null when there is no estimate.
  function serverNow() {
    checkClockJump();
    if (clock.best) {
      return { ms: performance.now() + clock.best.off, unc: Math.ceil(clock.best.rtt / 2) + 1,
        mono: true };
    }
    if (clock.stored) {
      return { ms: Date.now() + clock.stored.wall, unc: clock.stored.unc, mono: false };
    }
    return null;
  }

  function renderClockInfo() {
    var now = serverNow();
    if (!now) {
      relojServidorEl.className = 'discreto alerta';
      relojServidorEl.textContent = 'Sin hora del servidor todavía: los toques se guardan y su tiempo se calcula al conectar.';
    } else if (!now.mono) {
      relojServidorEl.className = 'discreto alerta';
      relojServidorEl.textContent = 'Hora del servidor de la última conexión (±' + now.unc + ' ms); se renueva al conectar.';
    } else {
      relojServidorEl.className = 'discreto';
      relojServidorEl.textContent = 'Hora del servidor ±' + now.unc + ' ms (' + clock.samples.length +
        (clock.samples.length === 1 ? ' muestra)' : ' muestras)');
    }
  }

  // -- storage ------------------------------------------------------------------------------------
  function readJson(key) {
    try { return plainJson(localStorage.getItem(key) || 'null'); } catch (e) { return null; }
  }

  function writeJson(key, value) {
    try {
      if (value === null) { localStorage.removeItem(key); } else { localStorage.setItem(key, JSON.stringify(value)); }
    } catch (e) { /* storage full or refused: the taps are in IndexedDB anyway */ }
  }

  // Taps: one IndexedDB store, in the order they were made (an auto-increment key).
  var dbReady = new Promise(function (resolve, reject) {
    var request = indexedDB.open('server5k-juez', 1);
    request.onupgradeneeded = function () {
      var store = request.result.createObjectStore('toques', { keyPath: 'seq', autoIncrement: true });
      store.createIndex('id', 'id', { unique: true });
    };
    request.onsuccess = function () { resolve(request.result); };
    request.onerror = function () { reject(request.error); };
    request.onblocked = function () { reject(new Error('Cierre las otras pestañas de la app.')); };
  });

  // One read-write transaction, resolved once it is committed (durably where the browser can).
  function write(work) {
    return dbReady.then(function (db) {
      return new Promise(function (resolve, reject) {
        var tx;
        try { tx = db.transaction('toques', 'readwrite', { durability: 'strict' }); } catch (e) { tx = db.transaction('toques', 'readwrite'); }
        var result = work(tx.objectStore('toques'));
        tx.oncomplete = function () { resolve(result && result.result !== undefined ? result.result : result); };
        tx.onerror = function () { reject(tx.error); };
        tx.onabort = function () { reject(tx.error || new Error('No se pudo guardar en el móvil.')); };
      });
    });
  }

  function readAll() {
    return dbReady.then(function (db) {
      return new Promise(function (resolve, reject) {
        var request = db.transaction('toques', 'readonly').objectStore('toques').getAll();
        request.onsuccess = function () { resolve(request.result); };
        request.onerror = function () { reject(request.error); };
      });
    });
  }

  var toques = [];  // every tap on this phone, oldest first (as stored)

  function saveTap(tap) {
    return write(function (store) { return store.add(tap); }).then(function (seq) {
      tap.seq = seq;
      toques.push(tap);
      return tap;
    });
  }

  function updateTaps(taps) {
    return write(function (store) { taps.forEach(function (t) { store.put(t); }); });
  }

  // -- the API ------------------------------------------------------------------------------------
  var session = readJson(SESSION_KEY);  // {usuario, refresh, me} or null
  var access = null;

  function ApiError(status, code, message, retryAfter) {
    this.status = status;
    this.code = code;
    this.message = message;
    this.retryAfter = retryAfter;
  }
  ApiError.prototype = Object.create(Error.prototype);

  function request(method, path, body, token) {
    var headers = {};
    if (body !== undefined) { headers['Content-Type'] = 'application/json'; }
    if (token) { headers.Authorization = 'Bearer ' + token; }
    return fetch(path, { method: method, headers: headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body) })
      .catch(function () {
        setReachable(false);
        throw new ApiError(0, 'network', 'No se pudo contactar con el servidor.');
      })
      .then(function (response) {
        setReachable(true);
        return response.text().then(plainJson).catch(function () { return null; }).then(function (answer) {
          if (response.ok) { return answer; }
          throw new ApiError(response.status, answer && answer.code,
            (answer && answer.detail) || 'El servidor respondió con un error (' + response.status + ').',
            Number(response.headers.get('Retry-After')) || 0);
        });
      });
  }

  var refreshing = null;
  function refreshAccess() {
    if (!session) { return Promise.reject(new ApiError(401, 'signed_out', 'Sesión cerrada.')); }
    if (!refreshing) {
      refreshing = request('POST', '/api/token/refresh/', { refresh: session.refresh })
        .then(function (answer) {
          access = answer.access;
          if (answer.refresh && session) { session.refresh = answer.refresh; writeJson(SESSION_KEY, session); }
          return access;
        }, function (err) {
          if (err.status === 401 || err.status === 400) { sessionEnded(); }
          throw err;
        })
        .then(function (a) { refreshing = null; return a; }, function (e) { refreshing = null; throw e; });
    }
    return refreshing;
  }

  // A request with the judge's access token, renewed once when refused as expired.
  function api(method, path, body) {
    var first = access ? request(method, path, body, access) : refreshAccess().then(function (token) {
      return request(method, path, body, token);
    });
    return first.catch(function (err) {
      if (err.status !== 401 || !access) { throw err; }
      access = null;
      return refreshAccess().then(function (token) { return request(method, path, body, token); });
    });
  }

  // -- connection state -----------------------------------------------------------------------------
  var reachable = false;
  function setReachable(value) {
    if (value && navigator.onLine === false) { value = false; }
    if (reachable === value) { return; }
    reachable = value;
    conexionEl.textContent = value ? 'Conectado' : 'Sin conexión';
    conexionEl.className = 'conexion ' + (value ? 'conectado' : 'desconectado');
    if (value) { kickSender(0); }
  }

  window.addEventListener('online', function () {
    connectSocket(0);
    poll(0);
    kickSender(0);
  });
  window.addEventListener('offline', function () { setReachable(false); });

  // -- the race's state -----------------------------------------------------------------------------
  // started: the start this phone times against: the moment it was given (`inicio_dado`), before
  // any ajustar_tiempos moved started_at. The server applies an adjustment to every record of
  // the race, those still to come too: a phone that first hears the start after one must not
  // have it in its times already.
  var race = { comp: null, started: null, nota: null };

  function applyCompetition(comp) {
    if (!comp) { return; }
    var before = race.comp;
    race.comp = comp;
    if (comp.estado === 'programada') {
      if (race.started || (before && before.estado !== 'programada')) {
        race.nota = 'Salida en falso: la carrera vuelve a estar programada. Espere la nueva salida.';
      }
      race.started = null;
    } else {
      // The start as given stays its reference: a later started_at is the organizer's
      // ajustar_tiempos, which the server applies to this phone's times itself. Another
      // inicio_dado is another start: this phone was away through a false start and the new
      // one (what it sent meanwhile is the cancelled start's, marked as such).
      if (race.started && comp.inicio_dado && comp.inicio_dado !== race.started) {
        race.started = null;
      }
      if (!race.started) { race.started = comp.inicio_dado || comp.started_at; }
      if (comp.estado === 'en_curso') { race.nota = null; }
      if (comp.estado === 'finalizada') {
        race.nota = 'Carrera finalizada a las ' + venueTime(comp.finished_at) +
          '. Los toques que haga aún se guardan y el organizador los verá como llegados tras el final.';
      }
    }
    if (session && session.me && session.me.juez) {
      session.me.juez.competencia = comp;
      session.started = race.started;
      writeJson(SESSION_KEY, session);
    }
    resolvePending();
    render();
  }

  // -- the socket ---------------------------------------------------------------------------------
  var ws = null;
  var wsBackoff = 0;
  var wsTimer = null;
  var pings = {};
  var pingSeq = 0;
  var pingTimer = null;

  function connectSocket(delay) {
    clearTimeout(wsTimer);
    wsTimer = setTimeout(openSocket, delay || 0);
  }

  function openSocket() {
    if (ws || !session) { return; }
    var juezId = session.me.juez.id;
    ws = 'abriendo';
    api('POST', '/api/ws-ticket/').then(function (answer) {
      if (!session || ws !== 'abriendo') { ws = null; return; }
      var scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
      var socket = new WebSocket(scheme + location.host + '/ws/juez/' + juezId + '/?ticket=' +
        encodeURIComponent(answer.ticket));
      ws = socket;
      socket.onmessage = function (event) { if (ws === socket) { onSocketMessage(socket, event.data); } };
      socket.onclose = function () { socketClosed(socket); };
      // A handshake lost in a Wi-Fi black hole can hang for minutes: give up and try again.
      setTimeout(function () {
        if (ws === socket && socket.readyState === 0) { socket.close(); socketClosed(socket); }
      }, PONG_TIMEOUT_MS);
    }).catch(function () {
      ws = null;
      retrySocket();
    });
  }

  function retrySocket() {
    if (!session) { return; }
    wsBackoff = Math.min(MAX_BACKOFF_MS, wsBackoff ? wsBackoff * 2 : 500);
    connectSocket(wsBackoff);
    poll(0);
  }

  function socketClosed(socket) {
    if (ws !== socket) { return; }
    ws = null;
    clearInterval(pingTimer);
    pings = {};
    setReachable(false);
    retrySocket();
  }

  function closeSocket() {
    var socket = ws;
    ws = null;
    clearInterval(pingTimer);
    clearTimeout(wsTimer);
    if (socket && socket.close) { socket.close(); }
  }

  // A burst of samples (the best of them is kept); then one every PING_EVERY_MS.
  function pingBurst() {
    for (var i = 0; i < 6; i++) { setTimeout(ping, i * 200); }
  }

  function ping() {
    if (!ws || ws.readyState !== 1) { return; }
    var n = ++pingSeq;
    pings[n] = performance.now();
    ws.send(JSON.stringify({ type: 'ping', data: { n: n } }));
    // A pong that never comes: the link is dead though the socket says open.
    var socket = ws;
    setTimeout(function () {
      if (pings[n] !== undefined && ws === socket) { delete pings[n]; socket.close(); socketClosed(socket); }
    }, PONG_TIMEOUT_MS);
  }

  function onSocketMessage(socket, text) {
    var t1 = performance.now();
    var msg;
    try { msg = plainJson(text); } catch (e) { return; }
    var data = msg.data || {};
    setReachable(true);
    if (msg.type === 'pong') {
      var t0 = pings[data.n];
      delete pings[data.n];
      if (t0 !== undefined) { addSample(t0, t1, data.server_time); }
    } else if (msg.type === 'conexion.establecida') {
      wsBackoff = 0;
      applyCompetition(data.competencia);
      pingBurst();
      clearInterval(pingTimer);
      pingTimer = setInterval(ping, PING_EVERY_MS);
      kickSender(0);
    } else if (msg.type === 'carrera.iniciada' || msg.type === 'carrera.finalizada' ||
               msg.type === 'carrera.cancelada') {
      applyCompetition(data.competencia);
    }
  }

  // -- polling (the start when the socket is down; the judge's teams) --------------------------------
  var pollTimer = null;
  var polling = false;
  function poll(delay) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(pollNow, delay || 0);
  }

  function pollNow() {
    if (!session || polling) { return; }  // one read at a time; it schedules the next
    polling = true;
    var t0 = performance.now();
    api('GET', '/api/me/').then(function (me) {
      if (!session) { return; }
      // The server's clock from a poll too: a phone whose socket never opens still gets an
      // offset (its round trip is longer; the socket's samples win when there are any).
      if (me.server_time) { addSample(t0, performance.now(), me.server_time); }
      if (!me.juez) { return sessionEnded('Esta cuenta ya no es de un juez.'); }
      var before = session.me.juez.id;
      me.juez = pickJuez(me);
      session.me = me;
      writeJson(SESSION_KEY, session);
      if (me.juez.id !== before) { return switchCompetition(); }
      applyCompetition(me.juez.competencia);
      readBack(false);
    }).catch(function () { /* offline: the next poll */ })
      .then(function () {
        polling = false;
        if (session) { poll(ws && ws.readyState === 1 ? POLL_CONNECTED_MS : POLL_MS); }
      });
  }

  // A judge of several competitions (`jueces` of /api/me/: the same people every month, a
  // morning and an afternoon race) times one at a time on this phone: the one it chose here
  // (session.competencia), else the one the server says matters now (`juez`: the race running,
  // else the next one).
  function pickJuez(me) {
    var chosen = session && session.competencia;
    var jueces = me.jueces || [];
    for (var i = 0; i < jueces.length; i++) {
      if (jueces[i].competencia.id === chosen) { return jueces[i]; }
    }
    return me.juez;
  }

  // Another competition on this phone: its own start, its own socket (its judge id).
  function switchCompetition() {
    session.started = null;
    writeJson(SESSION_KEY, session);
    closeSocket();
    start();
  }

  function renderOtherCompetitions() {
    var box = $('otras-competencias');
    var others = (session.me.jueces || []).filter(function (j) { return j.id !== session.me.juez.id; });
    // Built anew only when the list changes: a poll's render must not swap a button mid-tap.
    var key = JSON.stringify(others.map(function (j) { return [j.id, j.competencia.nombre]; }));
    if (box.dataset.lista === key) { return; }
    box.dataset.lista = key;
    box.textContent = '';
    box.hidden = !others.length;
    others.forEach(function (juez) {
      var button = document.createElement('button');
      button.type = 'button';
      button.className = 'boton secundario';
      button.textContent = 'Cambiar a ' + juez.competencia.nombre;  // (text, never markup)
      button.addEventListener('click', function () {
        session.competencia = juez.competencia.id;
        session.me.juez = juez;
        switchCompetition();
      });
      box.appendChild(button);
    });
  }

  // -- taps -----------------------------------------------------------------------------------------
  function mine(t) { return session && t.usuario === session.usuario; }

  // Every team of this account, in every competition it times (`jueces` of /api/me/: a judge
  // of the morning race and the afternoon one): taps kept for any of them are still sent.
  function allTeamIds() {
    var jueces = (session.me.jueces && session.me.jueces.length) ? session.me.jueces
      : [session.me.juez];
    return [].concat.apply([], jueces.map(function (j) {
      return j.equipos.map(function (e) { return e.id; });
    }));
  }

  // The team's records of the start this phone times against (before it knows one: the taps
  // waiting for it); a tap that turned out to be before the start does not count.
  function teamTaps(equipoId) {
    return toques.filter(function (t) {
      return mine(t) && t.equipo_id === equipoId && t.started_at === race.started && t.estado !== 'antes';
    });
  }

  // at: the performance.now() of the finger touching the button (else now). Before this phone
  // knows of a start (offline at the gun, the socket and the polls not through yet) a tap is
  // kept all the same, with no start (started_at null): it takes the start once it is known.
  function tap(equipo, ausente, at) {
    var mono = performance.now();
    var now = serverNow();
    if (at !== undefined && at <= mono && mono - at < 2000) {
      if (now) { now.ms -= mono - at; }
      mono = at;
    }
    if (teamCount(equipo.id) >= MAXIMO) {
      showAviso('El equipo ' + equipo.nombre + ' (dorsal ' + equipo.dorsal + ') ya tiene ' + MAXIMO +
        ' registros: no se guarda otro.');
      if (navigator.vibrate) { navigator.vibrate([80, 60, 80]); }
      return Promise.resolve();
    }
    var record = { id: newId(), usuario: session.usuario, equipo_id: equipo.id,
      competencia_id: race.comp.id, started_at: race.started, sin_salida: !race.started, ausente: !!ausente, mono: mono, wall: Date.now(), sesion: SESSION_ID,
      server_ms: now ? now.ms : null, unc: now ? now.unc : null, fuente: now ? (now.mono ? 'mono' : 'pared') : null,
      tiempo: null, timestamp: null, estado: 'pendiente' };
    resolve(record);
    if (navigator.vibrate) { navigator.vibrate(ausente ? [40, 40, 40] : 40); }
    return saveTap(record).then(function () {
      showAviso(race.started ? '' : 'Toque guardado sin salida: su tiempo se calcula cuando este móvil sepa de la salida.');
      render();
      kickSender(0);
    }, function (err) {
      showAviso('No se pudo guardar el toque en el móvil: ' + (err && err.message || err) + '. Anótelo en papel.');
    });
  }

  // A tap's tiempo, once its server time is known (at the tap, or at the first clock sample).
  // A tap timed from the offset of a past page life (the phone's own clock) is timed again from
  // this page's monotonic clock as soon as it has a sample, if it is still unsent.
  function resolve(t) {
    if (t.estado !== 'pendiente' || inFlight[t.id]) { return false; }
    // Another start now (this phone was away through a false start): a tap still unsent that
    // was timed against the cancelled one takes this one, as a tap kept without a start does.
    if (t.started_at && race.started && race.comp && t.competencia_id === race.comp.id &&
        t.started_at !== race.started) {
      t.started_at = null;
      t.sin_salida = true;
      t.tiempo = null;
    }
    if (!t.started_at) { t.started_at = startOf(t.competencia_id); }
    if (!t.started_at) { return false; }
    if (t.tiempo !== null && !(t.fuente !== 'mono' && clock.best && t.sesion === SESSION_ID)) { return false; }
    if (clock.best && t.sesion === SESSION_ID) {
      if (t.fuente !== 'mono') {
        t.server_ms = t.mono + clock.best.off;
        t.unc = Math.ceil(clock.best.rtt / 2) + 1;
        t.fuente = 'mono';
      }
    } else if (t.server_ms === null) {
      if (!clock.stored) { return false; }
      t.server_ms = t.wall + clock.stored.wall;
      t.unc = clock.stored.unc;
      t.fuente = 'pared';
    }
    t.timestamp = new Date(Math.round(t.server_ms)).toISOString();
    var since = Math.round(t.server_ms - Date.parse(t.started_at));
    if (t.sin_salida && !t.ausente && since < 0) {
      // Tapped before the start it waited for (a tap while waiting, or the cancelled start of a
      // false start the phone never heard of): not a finish of this start. Kept and listed,
      // never sent (the protocol has no negative time; 0 is an absent runner and any other
      // would count as a finish in the live standings): the judge tells the organizer, who
      // can enter a paper time if it was one.
      t.estado = 'antes';
      t.antes_ms = since;
      return true;
    }
    t.tiempo = t.ausente ? 0 : Math.max(1, since);
    return true;
  }

  // The start a tap kept without one takes: its competition's, once this phone knows it
  // (the one it times, or another of the judge's that /api/me/ says has started).
  function startOf(competenciaId) {
    if (race.comp && race.comp.id === competenciaId) { return race.started; }
    var jueces = (session && session.me.jueces) || [];
    for (var i = 0; i < jueces.length; i++) {
      var c = jueces[i].competencia;
      if (c.id === competenciaId && c.estado !== 'programada') { return c.inicio_dado || c.started_at; }
    }
    return null;
  }

  function resolvePending() {
    var changed = toques.filter(resolve);
    if (changed.length) {
      updateTaps(changed).then(function () { kickSender(0); });
    }
  }

  // -- the read-back: the teams' records as the server holds them (static/juez/lectura.js) -------------
  // On sign-in and reload, then with the polls at most every READBACK_MS (never per tap).
  var lectura = window.Server5KJuezLectura.reader({
    api: api, every: READBACK_MS,
    taps: function () { return toques.filter(mine); },
    started: function () { return race.started; },
    // A tap the server already holds is sent (its 201 was lost on the way back).
    held: function (t, pedida) {
      if (!session || !mine(t) || t.estado !== 'pendiente' || t.tiempo === null || inFlight[t.id]) { return false; }
      t.estado = 'enviado';
      t.error = null;
      t.confirmado_en = pedida;
      return true;
    },
    done: function (confirmed) {
      if (confirmed.length) { updateTaps(confirmed); }
      render();
    }
  });

  function teamView(equipoId) { return lectura.teamView(equipoId); }
  function teamCount(equipoId) { return lectura.teamView(equipoId).cuenta; }

  function readBack(force) {
    if (session) { lectura.read(session.me.juez.equipos, force); }
  }

  function undo(equipo) {
    var taps = teamTaps(equipo.id).filter(function (t) { return t.estado === 'pendiente'; });
    var last = taps[taps.length - 1];
    if (!last || inFlight[last.id]) {
      showAviso('Nada que deshacer en ' + equipo.nombre + ': su último toque ya se envió (solo el organizador puede anularlo).');
      return Promise.resolve();
    }
    // Out of the sender's sight at once (it must not leave while its removal is written).
    toques = toques.filter(function (t) { return t !== last; });
    render();
    return write(function (store) { store.delete(last.seq); }).then(function () {
      showAviso('');
    }, function (err) {
      toques.push(last);
      toques.sort(function (a, b) { return a.seq - b.seq; });
      render();
      kickSender(0);
      showAviso('No se pudo deshacer: ' + (err && err.message || err));
    });
  }

  // -- the sender -----------------------------------------------------------------------------------
  var inFlight = {};
  var sending = false;
  var sendBackoff = 0;
  var sendTimer = null;
  var refusedUntil = {};  // equipo_id -> when to try again a team the server refused

  function pending() {
    return toques.filter(function (t) { return mine(t) && t.estado === 'pendiente'; });
  }

  function kickSender(delay) {
    clearTimeout(sendTimer);
    sendTimer = setTimeout(sendNext, delay || 0);
  }

  function sendNext() {
    if (sending || !session) { return; }
    resolvePending();  // (nothing leaves timed against a start since cancelled)
    var now = Date.now();
    var ready = pending().filter(function (t) {
      return t.tiempo !== null && !(refusedUntil[t.equipo_id] > now);
    });
    if (!ready.length) {
      // Only teams the server refused a moment ago: try them again when their pause ends.
      var until = pending().map(function (t) { return refusedUntil[t.equipo_id] || 0; })
        .filter(function (u) { return u > now; });
      if (until.length) { kickSender(Math.min.apply(null, until) - now); }
      return;
    }
    var equipoId = ready[0].equipo_id;  // the oldest, and the team's others with it
    var batch = ready.filter(function (t) { return t.equipo_id === equipoId; }).slice(0, MAXIMO);
    sending = true;
    batch.forEach(function (t) { inFlight[t.id] = true; });
    api('POST', '/api/enviar_tiempos/', { equipo_id: equipoId, registros: batch.map(function (t) {
      return { id_registro: t.id, timestamp: t.timestamp, tiempo: t.tiempo };
    }) }).then(function (answer) {
      var confirmed = {};
      (answer.created || []).concat(answer.duplicates || []).forEach(function (id) { confirmed[id] = true; });
      var done = batch.filter(function (t) { return confirmed[t.id]; });
      done.forEach(function (t) { t.estado = 'enviado'; t.error = null; t.confirmado_en = Date.now(); });
      if (allTeamIds().indexOf(equipoId) < 0) { poll(0); }
      return updateTaps(done).then(function () {
        if (done.length === batch.length) { sendBackoff = 0; return 0; }
        throw new Error('unconfirmed');  // not listed: sent again after a pause
      });
    }).catch(function (err) {
      if (err.status === 400 || err.status === 403 || err.status === 404) {
        // Refused for what it is (a team no longer this judge's...): kept, shown, retried later.
        batch.forEach(function (t) { t.error = err.message; });
        refusedUntil[equipoId] = Date.now() + REFUSED_PAUSE_MS;
        poll(0);  // the judge's teams as they are now
        showAviso('El servidor no acepta los tiempos de este equipo: ' + err.message +
          ' Se guardan en el móvil; avise al organizador.');
        return 0;
      }
      if (err.status === 401 && !session) { return null; }
      sendBackoff = Math.min(MAX_BACKOFF_MS, sendBackoff ? sendBackoff * 2 : 500);
      return Math.max(sendBackoff, Math.min(err.retryAfter || 0, 10) * 1000);
    }).catch(function () { return MAX_BACKOFF_MS; }).then(function (wait) {
      sending = false;
      batch.forEach(function (t) { delete inFlight[t.id]; });
      render();
      if (wait !== null) { kickSender(wait); }
    });
  }

  // -- screens --------------------------------------------------------------------------------------
  function mount(templateId) {
    app.textContent = '';
    app.appendChild(document.importNode($(templateId).content, true));
    app.dataset.pantalla = templateId.slice(2);
  }

  function showSignIn(message) {
    mount('t-entrar');
    salirEl.hidden = true;
    var form = $('form-entrar');
    var params = new URLSearchParams(location.search);
    form.username.value = params.get('usuario') || localStorage.getItem(LAST_USER_KEY) || '';
    var error = form.querySelector('.error');
    error.textContent = message || '';
    error.hidden = !message;
    (form.username.value ? form.password : form.username).focus();
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var button = form.querySelector('button');
      if (button.disabled) { return; }
      button.disabled = true;
      error.hidden = true;
      signIn(form.username.value.trim(), form.password.value).catch(function (err) {
        error.textContent = err.status === 401 ? 'Usuario o contraseña incorrectos.' : err.message;
        error.hidden = false;
      }).then(function () { button.disabled = false; });
    });
  }

  function signIn(username, password) {
    if (!username || !password) {
      return Promise.reject(new ApiError(400, 'validation_error', 'Escriba su usuario y su contraseña.'));
    }
    return request('POST', '/api/token/', { username: username, password: password }).then(function (tokens) {
      return request('GET', '/api/me/', undefined, tokens.access).then(function (me) {
        if (!me.juez) {
          throw new ApiError(403, 'not_a_judge', 'Esta cuenta no es de un juez: la app es para los jueces.');
        }
        access = tokens.access;
        session = { usuario: me.user.username.toLowerCase(), refresh: tokens.refresh, me: me };
        try { localStorage.setItem(LAST_USER_KEY, me.user.username); } catch (e) { /* private mode */ }
        writeJson(SESSION_KEY, session);
        start();
      });
    });
  }

  function sessionEnded(message) {
    if (message === undefined) {
      message = 'Su sesión terminó: entre de nuevo. Los toques guardados en el móvil se enviarán después.';
    }
    closeSocket();
    clearTimeout(pollTimer);
    session = null;
    access = null;
    writeJson(SESSION_KEY, null);
    releaseWakeLock();
    race = { comp: null, started: null, nota: null };
    lectura.forget();
    showSignIn(message);
    renderCounts();
  }

  function start() {
    race = { comp: null, started: session.started || null, nota: null };
    teamsShown = null;
    mount('t-carrera');
    salirEl.hidden = false;
    applyCompetition(session.me.juez.competencia);
    resolvePending();
    connectSocket(0);
    poll(POLL_MS);
    kickSender(0);
    readBack(true);
  }

  function render() {
    renderCounts();
    if (!session || app.dataset.pantalla !== 'carrera') { return; }
    var comp = race.comp;
    var juez = session.me.juez;
    $('comp-nombre').textContent = comp.nombre;
    $('comp-prevista').textContent = comp.fecha_hora ? 'Salida prevista: ' + venueTime(comp.fecha_hora, true) : '';
    $('juez-nombre').textContent = 'Juez: ' + (juez.nombre || session.usuario);
    renderOtherCompetitions();
    var estado = comp.estado === 'en_curso' ? 'Carrera en curso' :
      comp.estado === 'finalizada' ? 'Carrera finalizada' : 'Esperando la salida';
    $('estado').textContent = estado;
    $('estado').className = 'estado ' + comp.estado;
    $('reloj').hidden = !race.started;
    $('nota-salida').textContent = race.nota || '';
    $('nota-salida').hidden = !race.nota;
    $('sin-salida').hidden = !!race.started;
    renderRaceClock();
    // The blocks are built once per roster and updated in place: a button rebuilt under the
    // judge's finger would lose the tap.
    var roster = JSON.stringify(juez.equipos);
    if (teamsShown !== roster) {
      teamsShown = roster;
      var list = $('equipos');
      list.textContent = '';
      juez.equipos.forEach(function (equipo) { list.appendChild(teamBlock(equipo)); });
    }
    juez.equipos.forEach(updateTeamBlock);
    var others = toques.filter(function (t) { return !mine(t) && t.estado === 'pendiente'; });
    var ids = allTeamIds();
    var orphans = pending().filter(function (t) { return ids.indexOf(t.equipo_id) < 0; });
    var notes = [];
    var early = toques.filter(function (t) { return mine(t) && t.estado === 'antes'; });
    if (early.length) {
      notes.push(early.length + ' toques anteriores a la salida se guardan en este móvil y no se envían: si alguno era una llegada, avise al organizador.');
    }
    if (orphans.length) {
      notes.push(orphans.length + ' toques de equipos que ya no tiene asignados esperan en este móvil y el servidor no los acepta: avise al organizador.');
    }
    if (others.length) {
      notes.push(others.length + ' toques de otra cuenta de juez esperan en este móvil: se enviarán cuando esa cuenta entre.');
    }
    $('otros-pendientes').hidden = !notes.length;
    $('otros-pendientes').textContent = notes.join(' ');
    manageWakeLock();
  }

  var teamsShown = null;

  function teamBlock(equipo) {
    var big = el('button', { type: 'button', className: 'toque' },
      el('span', { className: 'nombre' }, equipo.nombre),
      el('span', { className: 'dorsal' }, 'Dorsal ' + equipo.dorsal));
    // The finish is when the finger touches; the tap is kept when it lifts (a scroll that starts
    // on the button is not a tap).
    var down = null;
    big.addEventListener('pointerdown', function (event) {
      down = event.timeStamp > 0 && event.timeStamp <= performance.now() ? event.timeStamp : performance.now();
    });
    big.addEventListener('click', function () {
      var at = down;
      down = null;
      tap(equipo, false, at === null ? undefined : at);
    });
    var deshacer = el('button', { type: 'button', className: 'boton secundario deshacer' }, 'Deshacer');
    deshacer.addEventListener('click', function () { undo(equipo); });
    var ausente = el('button', { type: 'button', className: 'boton secundario ausente' }, 'Ausente');
    ausente.addEventListener('click', function () {
      if (teamCount(equipo.id) >= MAXIMO) { return tap(equipo, true); }
      confirmDialog('¿Un corredor ausente?', 'Se registra un corredor ausente de ' + equipo.nombre +
        ' (dorsal ' + equipo.dorsal + '): cuenta como uno de sus ' + MAXIMO + ' registros, sin tiempo.',
        'Sí, ausente').then(function (ok) { if (ok) { tap(equipo, true); } });
    });
    return el('li', { className: 'equipo', dataset: { equipoId: equipo.id } },
      big,
      el('div', { className: 'fila' }, el('span', { className: 'cuenta' }), deshacer, ausente),
      el('ol', { className: 'tiempos' }));
  }

  function updateTeamBlock(equipo) {
    var block = app.querySelector('.equipo[data-equipo-id="' + Number(equipo.id) + '"]');
    if (!block) { return; }
    var view = teamView(equipo.id);
    block.className = 'equipo' + (view.cuenta >= MAXIMO ? ' lleno' : '') + (race.started ? '' : ' sin-salida');
    block.querySelector('.cuenta').textContent = view.cuenta + ' de ' + MAXIMO;
    var times = block.querySelector('.tiempos');
    times.textContent = '';
    // Newest first; taps of a start since cancelled (a false start) stay listed, marked, and
    // do not count; so do the records the organizer voided or moved (static/juez/lectura.js).
    view.items.forEach(function (x) { times.appendChild(window.Server5KJuezLectura.itemNode(x, race.started)); });
  }

  function renderCounts() {
    var n = pending().length;
    porEnviarEl.textContent = n + ' por enviar';
    porEnviarEl.className = 'por-enviar' + (n ? ' hay' : '');
  }

  function renderRaceClock() {
    var reloj = $('reloj');
    if (!reloj || !race.comp || !race.started) { return; }
    var start = Date.parse(race.started);
    var now = serverNow();
    var until = race.comp.estado === 'finalizada' && race.comp.finished_at ? Date.parse(race.comp.finished_at) : null;
    reloj.textContent = until !== null ? clockText(until - start) : now ? clockText(now.ms - start) : '—:——:——';
  }

  setInterval(function () { renderRaceClock(); }, 200);
  setInterval(renderClockInfo, 5000);

  // -- dialog ---------------------------------------------------------------------------------------
  function confirmDialog(title, text, accept) {
    var dialog = $('dialogo');
    $('dialogo-titulo').textContent = title;
    $('dialogo-texto').textContent = text;
    $('dialogo-aceptar').textContent = accept;
    dialog.returnValue = '';
    return new Promise(function (resolve) {
      dialog.addEventListener('close', function once() {
        dialog.removeEventListener('close', once);
        resolve(dialog.returnValue === 'si');
      });
      dialog.showModal();
    });
  }

  salirEl.addEventListener('click', function () {
    var n = pending().length;
    var ask = n ? confirmDialog('¿Salir con toques sin enviar?', 'Quedan ' + n + ' toques sin enviar. ' +
      'Se quedan guardados en este móvil y se enviarán cuando vuelva a entrar con esta cuenta.', 'Salir igualmente') :
      Promise.resolve(true);
    ask.then(function (ok) { if (ok) { sessionEnded(''); } });
  });

  // -- the screen stays on while racing --------------------------------------------------------------
  var wakeLock = null;
  function manageWakeLock() {
    var want = race.comp && race.comp.estado === 'en_curso' && document.visibilityState === 'visible';
    if (want && !wakeLock && navigator.wakeLock) {
      wakeLock = 'pidiendo';
      navigator.wakeLock.request('screen').then(function (lock) {
        wakeLock = lock;
        lock.addEventListener('release', function () { if (wakeLock === lock) { wakeLock = null; } });
      }).catch(function () { wakeLock = null; });
    } else if (!want) {
      releaseWakeLock();
    }
  }

  function releaseWakeLock() {
    if (wakeLock && wakeLock.release) { wakeLock.release().catch(function () {}); }
    wakeLock = null;
  }

  document.addEventListener('visibilitychange', function () {
    manageWakeLock();
    if (document.visibilityState === 'visible' && session) {
      checkClockJump();
      pingBurst();
      poll(0);
      kickSender(0);
      connectSocket(0);
    }
  });

  // -- start ----------------------------------------------------------------------------------------
  if (!window.isSecureContext) { $('aviso-https').hidden = false; }
  if ('serviceWorker' in navigator && window.isSecureContext) {
    navigator.serviceWorker.register('/juez/sw.js', { scope: '/juez/' }).catch(function () {});
  }
  renderClockInfo();
  readAll().then(function (all) {
    toques = all;
    if (session && session.me && session.me.juez) { start(); } else { session = null; showSignIn(); }
    renderCounts();
  }, function (err) {
    showAviso('Este navegador no deja guardar datos (IndexedDB): ' + (err && err.message || err) +
      '. Use otro navegador o salga del modo privado; sin eso un toque podría perderse.');
    showSignIn();
  });
})();
