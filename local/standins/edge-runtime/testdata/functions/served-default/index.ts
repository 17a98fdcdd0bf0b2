// Test fixture: a function written as `export default { fetch }` instead of Deno.serve.
export default {
  fetch(request: Request): Response {
    return new Response(`default export saw ${new URL(request.url).pathname}`);
  },
};
