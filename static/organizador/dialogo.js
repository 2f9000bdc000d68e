// The organizer's console, its one dialog: every confirmation and every reason ("Motivo").
(function (C) {
  'use strict';

  var $ = C.$, el = C.el, fill = C.fill, formError = C.formError;

  // ask({titulo, texto, campos: [{name, label, type, options, value, required}], aceptar,
  //      accion(values) -> promise}) resolves true once accion succeeded, false if cancelled. The
  // dialog stays open while accion runs (its button disabled) and shows its error if it fails.
  var dialog = $('dialogo');
  var dialogForm = $('dialogo-form');
  var dialogAccept = $('dialogo-aceptar');
  var dialogCancel = $('dialogo-cancelar');
  var dialogState = null;

  function ask(spec) {
    if (dialogState) { return Promise.resolve(false); }
    $('dialogo-titulo').textContent = spec.titulo;
    var texto = $('dialogo-texto');
    fill(texto, [].concat(spec.texto || []).map(function (part) {
      return typeof part === 'string' ? el('p', {}, part) : part;
    }));
    var campos = $('dialogo-campos');
    fill(campos, (spec.campos || []).map(field));
    formError(dialogForm, '');
    dialogAccept.textContent = spec.aceptar || 'Aceptar';
    dialogAccept.disabled = false;
    dialogCancel.hidden = !!spec.soloCerrar;
    return new Promise(function (resolve) {
      dialogState = { spec: spec, resolve: resolve, busy: false };
      dialog.showModal();
      var first = campos.querySelector('input, select');
      if (first) { first.focus(); }
    });
  }

  function field(spec) {
    var control;
    if (spec.options) {
      control = el('select', { name: spec.name });
      spec.options.forEach(function (option) {
        control.appendChild(el('option', { value: String(option[0]) }, option[1]));
      });
    } else {
      control = el('input', { name: spec.name, type: spec.type || 'text', autocomplete: 'off' });
      if (spec.maxLength) { control.maxLength = spec.maxLength; }
    }
    if (spec.value !== undefined && spec.value !== null) { control.value = String(spec.value); }
    control.required = !!spec.required;
    return el('label', {}, spec.label + ' ', control);
  }

  function closeDialog(result) {
    var state = dialogState;
    dialogState = null;
    dialog.close();
    if (state) { state.resolve(result); }
  }

  dialogForm.addEventListener('submit', function (event) {
    event.preventDefault();
    var state = dialogState;
    if (!state || state.busy) { return; }
    var values = {};
    Array.prototype.forEach.call(dialogForm.querySelectorAll('[name]'), function (control) {
      values[control.name] = control.value;
    });
    state.busy = true;
    dialogAccept.disabled = true;
    formError(dialogForm, '');
    Promise.resolve().then(function () { return state.spec.accion && state.spec.accion(values); })
      .then(function () { closeDialog(true); }, function (err) {
        state.busy = false;
        dialogAccept.disabled = false;
        formError(dialogForm, err.message);
      });
  });
  dialogCancel.addEventListener('click', function () {
    if (dialogState && !dialogState.busy) { closeDialog(false); }
  });
  dialog.addEventListener('cancel', function (event) {  // Escape
    event.preventDefault();
    if (dialogState && !dialogState.busy) { closeDialog(false); }
  });

  var MOTIVO = { name: 'motivo', label: 'Motivo', required: true, maxLength: 500 };

  // Signing out closes a dialog left open (as cancelled).
  function dismissDialog() {
    if (dialogState) { closeDialog(false); }
  }

  Object.assign(C, { ask: ask, MOTIVO: MOTIVO, dismissDialog: dismissDialog });
}(window.Server5KConsola));
