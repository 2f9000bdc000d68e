// The organizer's console, its session: the tokens, every request to the API (the same REST API
// the command line uses: there is no second way to change data), signing in and out, and resuming
// this tab's session when the page opens.
//
// Where the tokens live: the refresh token in sessionStorage (it survives a reload and a phone
// putting the tab to sleep, for as long as the refresh token lives; it dies with the tab, so a
// borrowed laptop forgets it, and other tabs and sites never see it), the access token in memory
// only. Neither ever goes into a URL: the live socket opens with a single-use 30-second ticket.
(function (C) {
  'use strict';

  var el = C.el, showAviso = C.showAviso, plainJson = window.Server5KComun.plainJson;
  var KEY = 'server5k.organizador.refresh';
  var quienEl = document.getElementById('quien');
  var salirEl = document.getElementById('salir');

  var session = { access: null, refresh: sessionStorage.getItem(KEY), user: null };

  function ApiError(status, code, message, body) {
    this.status = status;
    this.code = code;
    this.message = message;
    this.body = body || null;  // the whole answer (an interrupted import's carries what it wrote)
  }
  ApiError.prototype = Object.create(Error.prototype);

  function describe(status, body) {
    if (body && body.detail) {
      var message = body.detail;
      var extra = Object.keys(body.errors || {}).map(function (k) { return body.errors[k]; })
        .filter(function (words) { return message.indexOf(words) < 0; }).slice(0, 3);
      return extra.length ? message + ' ' + extra.join(' ') : message;
    }
    if (status === 0) { return 'No se pudo contactar con el servidor: compruebe la red.'; }
    return 'El servidor respondió con un error (' + status + ').';
  }

  // One request: the parsed JSON (or a Blob, or null for 204), or an ApiError.
  function request(method, path, options) {
    options = options || {};
    var headers = {};
    var body;
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(options.body);
    } else if (options.raw !== undefined) {
      headers['Content-Type'] = options.contentType;
      body = options.raw;
    }
    if (options.auth !== false && session.access) {
      headers.Authorization = 'Bearer ' + session.access;
    }
    return fetch(path, { method: method, headers: headers, body: body, cache: 'no-store',
      credentials: 'omit' })
      .catch(function () { throw new ApiError(0, 'network', describe(0)); })
      .then(function (response) {
        if (response.status === 204) { return null; }
        if (response.ok && options.blob) { return response.blob(); }
        var parsed = response.text().then(plainJson).catch(function () { return null; });
        return parsed.then(function (data) {
          if (!response.ok) {
            throw new ApiError(response.status, data && data.code, describe(response.status, data),
              data);
          }
          return data;
        });
      });
  }

  var refreshing = null;
  function refreshAccess() {
    if (!refreshing) {
      refreshing = request('POST', '/api/token/refresh/', { body: { refresh: session.refresh },
        auth: false })
        .then(function (answer) {
          session.access = answer.access;
          if (answer.refresh) { keepRefresh(answer.refresh); }
        })
        .finally(function () { refreshing = null; });
    }
    return refreshing;
  }

  function keepRefresh(token) {
    session.refresh = token;
    sessionStorage.setItem(KEY, token);
  }

  // An authenticated request; an expired access token is refreshed once and the request retried.
  // A session that can no longer be refreshed ends: back to the sign-in screen.
  function api(method, path, options) {
    return request(method, path, options).catch(function (err) {
      if (err.status !== 401 || !session.refresh || (options && options.auth === false)) {
        throw err;
      }
      return refreshAccess().then(function () {
        return request(method, path, options);
      }, function (refreshErr) {
        if (refreshErr.status === 401) {
          signOut('La sesión terminó (' + refreshErr.message + '). Vuelva a entrar.');
        }
        throw refreshErr;
      });
    });
  }

  function saveFile(blob, filename) {
    var url = URL.createObjectURL(blob);
    var link = el('a', { href: url, download: filename });
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }

  function download(path, filename) {
    return api('GET', path, { blob: true }).then(function (blob) { saveFile(blob, filename); });
  }

  // -- signing in and out -------------------------------------------------------------------------
  function showSignedIn() {
    quienEl.textContent = session.user ? session.user.username : '';
    quienEl.hidden = !session.user;
    salirEl.hidden = !session.user;
  }

  function signIn(username, password) {
    if (!username || !password) {
      return Promise.reject(new ApiError(400, 'validation_error',
        'Escriba su usuario y su contraseña.'));
    }
    return request('POST', '/api/token/', { body: { username: username, password: password },
      auth: false })
      .then(function (tokens) {
        session.access = tokens.access;
        return request('GET', '/api/me/').then(function (me) {
          if (!me.user.organizador) {
            session.access = null;
            throw new ApiError(403, 'organizer_only',
              'Esta cuenta es de un juez: la consola es solo para organizadores.');
          }
          keepRefresh(tokens.refresh);
          session.user = me.user;
          showSignedIn();
        });
      });
  }

  function signOut(message) {
    session.access = null;
    session.refresh = null;
    session.user = null;
    sessionStorage.removeItem(KEY);
    C.dismissDialog();
    showSignedIn();
    C.showLogin(message);  // (static/organizador.js)
  }

  salirEl.addEventListener('click', function () {
    signOut('');
    history.replaceState(null, '', location.pathname);
  });

  // -- start: resume the session if this tab has one ---------------------------------------------------
  function resume() {
    if (!session.refresh) { return C.showLogin(''); }
    refreshAccess().then(function () { return request('GET', '/api/me/'); }).then(function (me) {
      if (!me.user.organizador) { throw new ApiError(403, 'organizer_only', ''); }
      session.user = me.user;
      showSignedIn();
      C.route();  // (static/organizador.js)
    }, function (err) {
      if (err.status === 0) {
        showAviso(err.message);
        setTimeout(resume, 3000);
        return;
      }
      signOut(err.status === 401 ? 'La sesión terminó. Vuelva a entrar.' : err.message);
    });
  }

  function signedIn() { return !!session.user; }

  // The tokens stay in this file; the other files ask through these.
  Object.assign(C, { api: api, saveFile: saveFile, download: download, signIn: signIn,
    signOut: signOut, signedIn: signedIn, resume: resume });
}(window.Server5KConsola));
