// The API's interactive documentation: Swagger UI served by this service (no CDN), over /openapi.json.
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    layout: "BaseLayout",
    showExtensions: true,
    presets: [SwaggerUIBundle.presets.apis],
  });
});
