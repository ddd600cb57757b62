// Suggests the category when the description loses focus, through the service's API.
"use strict";

const API = "api/predizer_categoria";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("product-form");
  const description = document.getElementById("descricao");
  const category = document.getElementById("categoria");
  const status = document.getElementById("status");
  let lastSent = null;

  function show(message, kind) {
    status.textContent = message;
    status.className = kind || "";
  }

  async function suggest() {
    const text = description.value.trim();
    if (!text || text === lastSent) return;
    lastSent = text;
    show("Classificando…", "busy");
    description.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(API, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify({ descricao: text }),
        signal: AbortSignal.timeout(10000),
      });
      let body = null;
      try { body = await response.json(); } catch (_) { /* not JSON: nginx or a proxy answered */ }
      if (!response.ok) {
        const reason = body && body.erro ? body.erro : `o serviço respondeu ${response.status}`;
        throw new Error(reason);
      }
      category.value = body.categoria;
      show(`Categoria sugerida: ${category.options[category.selectedIndex].text}.`, "ok");
    } catch (error) {
      lastSent = null; // let the user try again
      const reason = error.name === "TimeoutError" ? "o serviço não respondeu a tempo" : error.message;
      show(`Não foi possível sugerir a categoria: ${reason}. Escolha-a na lista.`, "error");
    } finally {
      description.removeAttribute("aria-busy");
    }
  }

  description.addEventListener("blur", suggest);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    show("Produto pronto para salvar (este formulário é uma demonstração).", "ok");
  });
});
