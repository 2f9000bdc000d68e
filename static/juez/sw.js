// The judge app's service worker (served as /juez/sw.js, scope /juez/, with VERSION and
// APP_FILES written above this line by the server: the app's files with their content hashes).
//
// It keeps the app itself on the phone so that it opens without a network after the first
// visit: the page (/juez/, fetched from the network first, from here when that fails) and its
// script, stylesheet, manifest and icons (from here: their URLs change with their content; the
// manifest's plain icon URLs are kept with this version, see keepManifestIcons). It
// never touches the API or the sockets: taps are the page's (IndexedDB), never a cached answer.
'use strict';

var CACHE = 'server5k-juez-' + VERSION;
var PAGE = '/juez/';

self.addEventListener('install', function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) {
    return cache.addAll([PAGE].concat(APP_FILES)).then(function () { return keepManifestIcons(cache); });
  }).then(function () { return self.skipWaiting(); }));
});

// The manifest names its icons by their plain URLs (an installed app keeps them, and the
// browser asks for them when it draws the home screen's icon or the splash screen): the copies
// named there are kept too, read from the very manifest this version keeps. (They change only
// with a new manifest or icon, which is a new worker: VERSION covers their hashes.)
function keepManifestIcons(cache) {
  var manifest = APP_FILES.filter(function (f) { return /\.webmanifest\?/.test(f); })[0];
  return cache.match(manifest).then(function (response) { return response.json(); })
    .then(function (parsed) {
      var icons = (parsed.icons || []).map(function (icon) { return new URL(icon.src, self.location.href); })
        .filter(function (url) { return url.origin === self.location.origin && APP_FILES.indexOf(url.pathname + url.search) < 0; })
        .map(function (url) { return url.pathname + url.search; });
      return cache.addAll(icons.filter(function (u, i) { return icons.indexOf(u) === i; }));
    });
}

self.addEventListener('activate', function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (name) {
      return name.indexOf('server5k-juez-') === 0 && name !== CACHE;
    }).map(function (name) { return caches.delete(name); }));
  }).then(function () { return self.clients.claim(); }));
});

self.addEventListener('fetch', function (event) {
  var request = event.request;
  if (request.method !== 'GET') { return; }
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) { return; }
  if (url.pathname === PAGE || url.pathname === '/juez') {
    event.respondWith(page(request));
    return;
  }
  if (APP_FILES.indexOf(url.pathname + url.search) >= 0 || url.pathname.indexOf('/static/juez/icono') === 0) {
    event.respondWith(caches.open(CACHE).then(function (cache) {
      return cache.match(request).then(function (kept) {
        return kept || fetch(request).then(function (response) {
          if (response.ok) { cache.put(request, response.clone()); }
          return response;
        });
      });
    }));
  }
});

// The page: the network's (a new version, ?usuario=...) when it answers well within a few
// seconds, else the one kept here (a venue Wi-Fi that swallows packets must not keep the app
// from opening; a server that is down or busy neither).
var PAGE_WAIT_MS = 3000;

function page(request) {
  function kept() {
    return caches.open(CACHE).then(function (cache) { return cache.match(PAGE); });
  }
  return new Promise(function (resolve, reject) {
    var done = false;
    function answer(response) {
      if (!done && response) { done = true; resolve(response); }
      return !!response;
    }
    var timer = setTimeout(function () { kept().then(answer); }, PAGE_WAIT_MS);
    fetch(request).then(function (response) {
      clearTimeout(timer);
      if (response.ok) {
        var copy = response.clone();
        caches.open(CACHE).then(function (cache) { return cache.put(PAGE, copy); });
        return answer(response);
      }
      return kept().then(function (k) { answer(k || response); });
    }, function (err) {
      clearTimeout(timer);
      return kept().then(function (k) { if (!answer(k) && !done) { done = true; reject(err); } });
    });
  });
}
