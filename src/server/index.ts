/** The HTTP server that `moon` talks to; everything else in this folder is its parts. */
export { type RunningServer, type ServeOptions, startServer } from './server.js';
