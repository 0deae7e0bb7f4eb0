// Renders the served openapi.yaml with Swagger UI; "Try it out" sends
// requests to this same server (the document's server is "/").
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.yaml",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: true,
    tryItOutEnabled: false,
  });
});
