// The organizer's console, the "Equipos y jueces" tab: the roster imported from a CSV (a
// preview, then one confirmation; new judges' passwords shown once), and the judges and teams
// managed one by one (added, edited, activated, status, penalty, deleted).
(function (C) {
  'use strict';

  var $ = C.$, el = C.el, fill = C.fill, once = C.once, act = C.act, formError = C.formError,
    showHecho = C.showHecho, ask = C.ask, MOTIVO = C.MOTIVO, api = C.api, saveFile = C.saveFile,
    base = C.base, done = C.done, load = C.load, teams = C.teams, judgesById = C.judgesById,
    judgeOptions = C.judgeOptions, parseDuracion = C.parseDuracion,
    signedSeconds = C.signedSeconds;
  var ESTADOS_EQUIPO = { ok: 'En carrera', dns: 'No salió (DNS)', dnf: 'No terminó (DNF)',
    dsq: 'Descalificado (DSQ)' };

  C.panels.plantilla = {
    mount: function () {
      var form = $('form-importar');
      form.addEventListener('submit', once(form.querySelector('button[type=submit]'), function () {
        formError(form, '');
        $('vista-previa').hidden = true;
        var file = form.archivo.files[0];
        if (!file) { formError(form, 'Elija el archivo CSV de la lista.'); return null; }
        // The file's bytes as they are: the server's one decoder decides the encoding (UTF-8
        // or Spanish Excel's Windows-1252) and the separator, as for the command line.
        return file.arrayBuffer().then(function (bytes) {
          C.state.csv = bytes;
          return api('POST', base('importar/?dry_run=1'), { raw: bytes, contentType: 'text/csv' });
        }).then(showPreview, function (err) { formError(form, err.message); });
      }));
      act($('importar'), function () {
        var preview = C.state.preview;
        return ask({ titulo: 'Importar la lista',
          texto: 'Se crearán ' + preview.jueces_nuevos + ' jueces y ' + preview.equipos_nuevos +
            ' equipos' + changedText(preview) + '. Las contraseñas nuevas se muestran una sola vez.',
          aceptar: 'Sí, importar',
          accion: function () {
            return api('POST', base('importar/'), { raw: C.state.csv, contentType: 'text/csv' })
              .then(function (answer) { C.state.imported = answer; }, function (err) {
                // Stopped partway: what it wrote stays, and its new judges' passwords come
                // only in this answer: shown now, before the error is.
                var partial = err.body && err.body.importado;
                if (partial && partial.credenciales.length) { showCredentials(partial.credenciales); }
                throw err;
              });
          } }).then(function (ok) {
          if (!ok) { return; }
          $('vista-previa').hidden = true;
          form.reset();
          showCredentials(C.state.imported.credenciales);
          done('Lista importada: ' + C.state.imported.jueces_nuevos + ' jueces y ' +
            C.state.imported.equipos_nuevos + ' equipos nuevos' + changedText(C.state.imported))();
        });
      });
      function credentialsCsv(separator, suffix) {
        var rows = [['usuario', 'nombre', 'contrasena']].concat(C.state.credentials.map(function (c) {
          return [c.username, c.nombre, c.password];
        }));
        saveFile(new Blob(['\ufeff' + rows.map(function (row) { return csvRow(row, separator); })
          .join('\r\n') + '\r\n'], { type: 'text/csv' }),
          'contrasenas-competencia-' + C.state.cid + suffix + '.csv');
      }
      act($('descargar-credenciales'), function () { credentialsCsv(',', ''); });
      act($('excel-credenciales'), function () { credentialsCsv(';', '-excel'); });
      $('ocultar-credenciales').addEventListener('click', function () {
        C.state.credentials = [];
        $('credenciales').hidden = true;
        $('credenciales-filas').textContent = '';
      });
      act($('anadir-juez'), addJudge);
      act($('anadir-equipo'), addTeam);
      if (C.state.credentials && C.state.credentials.length) { showCredentials([]); }
    },
    render: function () {
      fill($('jueces'), C.state.board.jueces.map(judgeRow));
      var judges = judgesById();
      fill($('equipos'), teams().map(function (t) { return teamRow(t, judges); }));
    }
  };

  // One CSV row; separator ',' (programs) or ';' (Excel where the decimal mark is a comma).
  function csvRow(cells, separator) {
    return cells.map(function (cell) {
      var text = String(cell === null || cell === undefined ? '' : cell);
      if (/^[=+\-@\t\r]/.test(text)) { text = "'" + text; }  // never a spreadsheet formula
      return /[",;\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
    }).join(separator);
  }

  // A re-imported roster corrects the teams already there (their dorsal): say how many, and
  // on each line what changes (detalle.equipos[].cambios: {campo: [antes, después]}).
  function changedText(answer) {
    return accountsText(answer) + (answer.equipos_cambiados ? '; se corregirán ' +
      answer.equipos_cambiados + ' equipos que ya estaban' : '');
  }

  // Judges of other competitions join this one with the account they have (same username,
  // same password): no new password for them.
  function accountsText(answer) {
    return answer.cuentas_existentes ? ' (' + answer.cuentas_existentes + ' de los jueces ya ' +
      'tienen cuenta de otra competencia: entran con su contraseña de siempre)' : '';
  }

  function changesText(t) {
    return Object.keys(t.cambios || {}).map(function (field) {
      var pair = t.cambios[field];
      return ' · ' + field.replace('juez_usuario', 'juez') + ': ' + (pair[0] === null ? '—' : pair[0]) +
        ' → ' + (pair[1] === null ? '—' : pair[1]);
    }).join('');
  }

  function showPreview(preview) {
    C.state.preview = preview;
    $('previa-resumen').textContent = 'Se crearán ' + preview.jueces_nuevos + ' jueces y ' +
      preview.equipos_nuevos + ' equipos' + (preview.equipos_nuevos < preview.detalle.equipos.length ?
      ' (' + (preview.detalle.equipos.length - preview.equipos_nuevos) + ' ya estaban)' : '') +
      changedText(preview) + '.';
    fill($('previa-lineas'), preview.notas.map(function (n) { return el('li', { className: 'nota' }, n); })
      .concat(preview.detalle.equipos.map(function (t) {
        return el('li', { className: t.nuevo ? 'nuevo' : 'existente' },
          'Línea ' + t.linea + ': ', el('strong', {}, t.nombre), ' · dorsal ' + t.dorsal +
          ' · juez ' + t.juez_usuario + (t.categoria ? ' · ' + t.categoria : '') +
          (t.nuevo ? '' : t.cambios ? changesText(t) : ' · ya estaba'));
      })));
    $('importar').disabled = !(preview.jueces_nuevos || preview.equipos_nuevos ||
      preview.equipos_cambiados);
    $('vista-previa').hidden = false;
  }

  function showCredentials(added) {
    C.state.credentials = (C.state.credentials || []).concat(added);
    fill($('credenciales-filas'), C.state.credentials.map(function (c) {
      return el('tr', {}, el('td', {}, c.username), el('td', {}, c.nombre),
        el('td', {}, el('code', {}, c.password)));
    }));
    $('credenciales').hidden = !C.state.credentials.length;
  }

  function addJudge() {
    return ask({ titulo: 'Añadir un juez',
      campos: [{ name: 'username', label: 'Usuario del juez', required: true, maxLength: 150 },
        { name: 'nombre', label: 'Nombre', maxLength: 200 },
        { name: 'password', label: 'Clave (vacía: se genera una)' }],
      aceptar: 'Añadir juez',
      accion: function (v) {
        var body = { username: v.username, nombre: v.nombre || null };
        if (v.password) { body.password = v.password; }
        return api('POST', base('jueces/'), { body: body }).then(function (answer) {
          if (answer.password) {
            showCredentials([{ username: answer.juez.username, nombre: answer.juez.nombre,
              password: answer.password }]);
          }
        });
      } }).then(function (ok) { if (ok) { done('Juez añadido')(); } });
  }

  function addTeam() {
    return ask({ titulo: 'Añadir un equipo',
      campos: [{ name: 'nombre', label: 'Nombre del equipo', required: true, maxLength: 200 },
        { name: 'dorsal', label: 'Dorsal', type: 'number', required: true },
        { name: 'juez_id', label: 'Juez', options: judgeOptions() },
        { name: 'categoria', label: 'Categoría (opcional)', maxLength: 100 }],
      aceptar: 'Añadir equipo',
      accion: function (v) {
        return api('POST', base('equipos/'), { body: { nombre: v.nombre, dorsal: Number(v.dorsal),
          juez_id: Number(v.juez_id), categoria: v.categoria || null } });
      } }).then(function (ok) { if (ok) { done('Equipo añadido')(); } });
  }

  function rowButtons(pairs) {
    var box = el('div', { className: 'botones' });
    pairs.forEach(function (pair) {
      var b = el('button', { type: 'button', className: 'boton pequeno' }, pair[0]);
      act(b, pair[1]);
      box.appendChild(b);
    });
    return box;
  }

  function judgeRow(j) {
    return el('li', { className: 'tarjeta' + (j.activo ? '' : ' inactivo'), dataset: { juezId: j.id } },
      el('p', { className: 'fila' }, el('strong', { className: 'nombre' }, j.nombre),
        el('span', { className: 'sub' }, j.username),
        el('span', { className: 'pildora' }, j.activo ? (j.conectado ? 'Conectado' : 'Activo') : 'Desactivado')),
      el('p', { className: 'sub' }, j.equipos.length ? j.equipos.map(function (e) {
        return e.nombre + ' (' + e.dorsal + ')';
      }).join(', ') : 'Sin equipos'),
      rowButtons([['Editar', function () { return editJudge(j); }],
        [j.activo ? 'Desactivar' : 'Activar', function () { return setJudgeActive(j, !j.activo); }],
        ['Enlace y QR', function () { return showJudgeLink(j); }]]));
  }

  // The judge app's link for one judge, with its QR code (drawn by the server): it fills in the
  // username, never the password, which the organizer hands over apart.
  function showJudgeLink(j) {
    return api('GET', '/api/jueces/' + j.id + '/enlace/').then(function (link) {
      return ask({ titulo: 'App del juez: ' + (j.nombre || j.username), soloCerrar: true, aceptar: 'Cerrar',
        texto: [el('img', { className: 'qr', src: link.qr, width: 220, height: 220,
          alt: 'Código QR del enlace de ' + j.username }),
          el('p', {}, el('a', { href: link.url, target: '_blank', rel: 'noopener', className: 'enlace-juez' }, link.url)),
          'El enlace abre la app con el usuario «' + j.username + '» escrito; la contraseña se entrega aparte.',
          link.aviso ? el('p', { className: 'nota' }, link.aviso) : null].filter(Boolean) });
    });
  }

  function judgePatch(j, body, hecho) {
    return api('PATCH', '/api/jueces/' + j.id + '/', { body: body }).then(function () { showHecho(hecho); });
  }

  function editJudge(j) {
    return ask({ titulo: 'Editar el juez ' + j.username,
      campos: [{ name: 'nombre', label: 'Nombre', value: j.nombre, required: true, maxLength: 200 },
        { name: 'password', label: 'Clave nueva (vacía: no cambia)' }],
      texto: 'Una clave nueva cierra la sesión del juez en todos sus móviles.',
      aceptar: 'Guardar',
      accion: function (v) {
        var body = { nombre: v.nombre };
        if (v.password) { body.password = v.password; }
        return judgePatch(j, body, 'Juez guardado');
      } }).then(function (ok) { if (ok) { load(); } });
  }

  function setJudgeActive(j, activo) {
    return ask({ titulo: (activo ? 'Activar' : 'Desactivar') + ' el juez ' + j.username,
      texto: activo ? 'Podrá volver a entrar y enviar tiempos.' :
        'Su sesión se cierra en todos sus móviles al momento y no podrá enviar tiempos ni oír la salida (un móvil perdido queda fuera).',
      aceptar: activo ? 'Sí, activar' : 'Sí, desactivar',
      accion: function () {
        return judgePatch(j, { activo: activo }, activo ? 'Juez activado' : 'Juez desactivado');
      } }).then(function (ok) { if (ok) { load(); } });
  }

  function teamRow(t, judges) {
    var judge = judges[t.juez_id];
    return el('li', { className: 'tarjeta', dataset: { equipoId: t.id } },
      el('p', { className: 'fila' }, el('strong', { className: 'nombre' }, t.nombre),
        el('span', { className: 'sub' }, 'dorsal ' + t.dorsal),
        t.estado !== 'ok' ? el('span', { className: 'pildora marca-roja' }, t.estado.toUpperCase()) : null),
      el('p', { className: 'sub' }, 'Juez ' + (judge ? judge.nombre : '—') +
        (t.categoria ? ' · ' + t.categoria : '') + ' · ' + t.registros + ' tiempos' +
        (t.penalizacion_ms ? ' · penalización ' + signedSeconds(t.penalizacion_ms) : '')),
      rowButtons([['Editar', function () { return editTeam(t); }],
        ['Estado', function () { return teamStatus(t); }],
        ['Penalización', function () { return teamPenalty(t); }],
        ['Eliminar', function () { return deleteTeam(t); }]]));
  }

  function editTeam(t) {
    return ask({ titulo: 'Editar el equipo ' + t.nombre,
      texto: 'Si cambia el juez, el equipo pasa al nuevo al momento; los tiempos ya recibidos conservan su juez.',
      campos: [{ name: 'nombre', label: 'Nombre del equipo', value: t.nombre, required: true, maxLength: 200 },
        { name: 'dorsal', label: 'Dorsal', type: 'number', value: t.dorsal, required: true },
        { name: 'juez_id', label: 'Juez', options: judgeOptions(), value: t.juez_id },
        { name: 'categoria', label: 'Categoría (opcional)', value: t.categoria, maxLength: 100 }],
      aceptar: 'Guardar',
      accion: function (v) {
        return api('PATCH', '/api/equipos/' + t.id + '/', { body: { nombre: v.nombre,
          dorsal: Number(v.dorsal), juez_id: Number(v.juez_id), categoria: v.categoria || null } });
      } }).then(function (ok) { if (ok) { done('Equipo guardado')(); } });
  }

  function teamStatus(t) {
    return ask({ titulo: 'Estado del equipo ' + t.nombre,
      campos: [{ name: 'estado', label: 'Estado', value: t.estado,
        options: Object.keys(ESTADOS_EQUIPO).map(function (k) { return [k, ESTADOS_EQUIPO[k]]; }) }, MOTIVO],
      aceptar: 'Guardar estado',
      accion: function (v) {
        return api('POST', '/api/equipos/' + t.id + '/estado/', { body: { estado: v.estado, motivo: v.motivo } });
      } }).then(function (ok) { if (ok) { done('Estado guardado')(); } });
  }

  function teamPenalty(t) {
    return ask({ titulo: 'Penalización del equipo ' + t.nombre,
      campos: [{ name: 'ms', label: 'Penalización (p. ej. +2:00 o 30s; 0 la quita)', required: true,
        value: t.penalizacion_ms ? signedSeconds(t.penalizacion_ms).replace(' ', '').replace('−', '-') : '' },
        MOTIVO],
      aceptar: 'Guardar penalización',
      accion: function (v) {
        return api('POST', '/api/equipos/' + t.id + '/penalizacion/', { body: { ms: parseDuracion(v.ms),
          motivo: v.motivo } });
      } }).then(function (ok) { if (ok) { done('Penalización guardada')(); } });
  }

  function deleteTeam(t) {
    return ask({ titulo: 'Eliminar el equipo ' + t.nombre,
      texto: 'Solo un equipo que nunca tuvo tiempos (un equipo de prueba o un error). Si no corre, márquelo DNS.',
      aceptar: 'Sí, eliminar',
      accion: function () { return api('DELETE', '/api/equipos/' + t.id + '/'); } })
      .then(function (ok) { if (ok) { done('Equipo eliminado')(); } });
  }
}(window.Server5KConsola));
