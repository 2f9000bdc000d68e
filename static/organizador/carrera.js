// The organizer's console, the "Carrera" tab: the race controls (start, stop, false start, the
// start adjusted) and the judges board (who is connected, who heard the start and when).
(function (C) {
  'use strict';

  var $ = C.$, el = C.el, fill = C.fill, act = C.act, showHecho = C.showHecho, ask = C.ask,
    MOTIVO = C.MOTIVO, api = C.api, base = C.base, done = C.done, load = C.load,
    judgeOptions = C.judgeOptions, parseDuracion = C.parseDuracion, localTime = C.localTime,
    signedSeconds = C.signedSeconds;

  C.panels.carrera = {
    mount: function () {
      act($('iniciar'), function () {
        var board = C.state.board;
        var total = board.jueces.length;
        return ask({ titulo: 'Iniciar la carrera',
          texto: ['Hay ' + board.conectados + ' de ' + total + ' jueces conectados.',
            board.conectados < total ? 'Los que se conecten después reciben la salida al conectarse.' :
              'Todos oirán la salida ahora.'],
          aceptar: 'Sí, iniciar',
          accion: function () { return api('POST', base('iniciar/')); } })
          .then(function (ok) { if (ok) { done('Carrera iniciada')(); } });
      });
      act($('detener'), function () {
        return ask({ titulo: 'Detener la carrera',
          texto: 'Los tiempos que lleguen después se guardan igualmente.', aceptar: 'Sí, detener',
          accion: function () { return api('POST', base('detener/')); } })
          .then(function (ok) { if (ok) { done('Carrera detenida')(); } });
      });
      act($('salida-falsa'), function () {
        var forced = false;
        return ask({ titulo: 'Salida en falso',
          texto: 'La carrera vuelve a estar programada y los móviles de los jueces lo oyen.',
          aceptar: 'Sí, salida en falso',
          accion: function () {
            return api('POST', base('reiniciar/')).catch(function (err) {
              if (err.code !== 'records_since_start') { throw err; }
              forced = err.message;
            });
          } }).then(function (ok) {
          if (!ok) { return; }
          if (!forced) { return done('Salida anulada: la carrera está programada')(); }
          return ask({ titulo: 'Ya llegaron tiempos',
            texto: [forced, 'Se conservan todos, marcados como llegados antes de la salida.'],
            aceptar: 'Forzar la salida en falso',
            accion: function () { return api('POST', base('reiniciar/'), { body: { force: true } }); } })
            .then(function (again) { if (again) { done('Salida anulada (forzada)')(); } });
        });
      });
      act($('ajustar'), function () {
        return ask({ titulo: 'Ajustar la salida',
          texto: 'Suma el ajuste a cada tiempo enviado por los móviles; sin juez, la salida se mueve también (la salida se dio tarde o temprano). Con un juez, solo sus tiempos (su móvil oyó la salida tarde). Los tiempos en papel no se ajustan nunca: se anotan como el tiempo real desde la salida real.',
          campos: [{ name: 'delta', label: 'Ajuste (p. ej. +20s o -1.5s)', required: true },
            { name: 'juez_id', label: 'Solo los tiempos de', options: judgeOptions(['', 'todos los jueces']) },
            MOTIVO],
          aceptar: 'Ajustar tiempos',
          accion: function (v) {
            var body = { delta_ms: parseDuracion(v.delta), motivo: v.motivo };
            if (v.juez_id) { body.juez_id = Number(v.juez_id); }
            return api('POST', base('ajustar_tiempos/'), { body: body }).then(function (answer) {
              showHecho('Ajustados ' + answer.registros_afectados + ' tiempos');
            });
          } }).then(function (ok) { if (ok) { load(); } });
      });
    },
    render: function () {
      var comp = C.state.comp;
      var board = C.state.board;
      $('iniciar').hidden = comp.estado !== 'programada';
      $('detener').hidden = comp.estado !== 'en_curso';
      $('salida-falsa').hidden = comp.estado === 'programada';
      $('ajustar').hidden = !comp.started_at;
      $('conectados').textContent = board.conectados + ' de ' + board.jueces.length + ' conectados';
      var late = board.registros_tras_final;
      $('tras-final').hidden = !late;
      $('tras-final').textContent = late + ' tiempos llegaron después del final.';
      var copia = board.replica;  // the live copy off the laptop (replica.url), when there is one
      $('copia').hidden = !copia;
      if (copia) {
        $('copia').className = 'nota' + (copia.running && copia.lag_s !== null && copia.lag_s < 10 ? '' : ' marca-roja');
        $('copia').textContent = 'Copia en vivo (' + copia.url + '): ' +
          (copia.running ? 'activa' : 'DETENIDA') +
          (copia.lag_s === null || copia.lag_s === undefined ? '' : ', ' + copia.lag_s.toFixed(1) + ' s de retraso') +
          (copia.last_error ? ' · último error: ' + copia.last_error : '');
      }
      var direcciones = board.direcciones || [];  // where the judges' phones reach the server
      $('direcciones').className = 'nota' + (direcciones.length ? '' : ' marca-roja');
      $('direcciones').textContent = direcciones.length ?
        'Dirección para los móviles de los jueces: ' + direcciones.join(' · ') :
        'Solo este ordenador llega al servidor: los móviles no podrán conectarse (ponga server.host: 0.0.0.0 y conecte el portátil a la red del evento).';
      fill($('tablero'), board.jueces.map(judgeCard));
      if (!board.jueces.length) {
        fill($('tablero'), [el('li', { className: 'sub' }, 'Sin jueces todavía: impórtelos en «Equipos y jueces».')]);
      }
    }
  };

  function judgeCard(j) {
    var started = !!C.state.comp.started_at;
    var lines = [];
    if (!j.activo) { lines.push(el('p', { className: 'marca-roja' }, 'Desactivado')); }
    lines.push(el('p', { className: 'sub' }, j.conectado ?
      j.sockets + (j.sockets === 1 ? ' conexión' : ' conexiones') + ' · última a las ' + localTime(j.ultima_conexion) :
      (j.ultima_conexion ? 'Última conexión a las ' + localTime(j.ultima_conexion) : 'Nunca se conectó')));
    if (started) {
      lines.push(el('p', { className: 'sub' },
        j.retraso_inicio_ms === null ? 'No ha oído la salida' :
          'Oyó la salida ' + signedSeconds(j.retraso_inicio_ms),
        j.inicio_implicito_ms === null ? '' : ' · su cronómetro: ' + signedSeconds(j.inicio_implicito_ms)));
    }
    if (j.alerta) {
      lines.push(el('p', { className: 'marca-roja' },
        '⚠ Revise este juez: su salida va con retraso (Ajustar la salida, solo sus tiempos).'));
    }
    var equipos = el('ul', { className: 'equipos-juez' });
    j.equipos.forEach(function (e) {
      equipos.appendChild(el('li', {}, 'Dorsal ' + e.dorsal + ' · ' + e.nombre + ': ',
        el('strong', {}, e.registros + (e.registros === 1 ? ' tiempo' : ' tiempos'))));
    });
    return el('li', { className: 'tarjeta juez ' + (j.conectado ? 'conectado' : 'desconectado') +
      (j.alerta ? ' alerta' : ''), dataset: { juezId: j.id } },
      el('div', { className: 'fila' }, el('strong', { className: 'nombre' }, j.nombre),
        el('span', { className: 'sub' }, j.username),
        el('span', { className: 'pildora' }, j.conectado ? 'Conectado' : 'Sin conexión')),
      lines, equipos);
  }
}(window.Server5KConsola));
