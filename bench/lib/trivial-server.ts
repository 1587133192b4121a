/**
 * The baseline servers, each run as its own process (like the gatekeeper) so the comparison is process against process:
 * - `auth`: a trivial node:http server answering every request 200 with the headers the gatekeeper sends for an allowed
 *   request (BENCH_HEADERS, JSON), an empty body: what forward_auth would cost if the decision were free;
 * - `upstream`: the application behind Caddy, `200 ok\n`.
 * Same keep-alive settings as the gatekeeper's server. Usage: trivial-server.ts auth|upstream <port>
 */
import http from 'node:http';

const [mode, portText] = process.argv.slice(2);
const port = Number(portText);
const extra = JSON.parse(process.env.BENCH_HEADERS ?? '{}') as Record<string, string>;

const server =
  mode === 'auth'
    ? http.createServer((_req, res) => {
        res.writeHead(200, { ...extra, 'Content-Length': 0 });
        res.end();
      })
    : http.createServer((req, res) => {
        req.resume();
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 3 });
        res.end('ok\n');
      });
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${port}\n`));
process.once('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
});
