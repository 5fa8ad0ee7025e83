// Starts Swagger UI on Salon's OpenAPI document. A file, not an inline script: the page's
// Content-Security-Policy allows scripts from this origin only.
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    tryItOutEnabled: true,
    validatorUrl: null, // the default validator is a remote service: none offline
  });
});
