// Starts a real bittorrent-tracker server (HTTP + UDP, IPv4) on 127.0.0.1 for
// moss-discovery's integration tests.
//
// usage: node tracker-server.mjs PORT [INTERVAL_SECONDS] [ipv6]
// Binds UDP on 127.0.0.1:PORT and HTTP on 127.0.0.1:PORT (or on [::1]:PORT
// with the `ipv6` argument, to exercise `peers6`). Prints "READY <port>" on
// stdout once both sockets are bound, then serves until killed (or until its
// stdin closes).
import Server from 'bittorrent-tracker/server'

const port = Number.parseInt(process.argv[2] ?? '', 10)
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node tracker-server.mjs PORT [INTERVAL_SECONDS] [ipv6]')
  process.exit(2)
}
const intervalSec = Number.parseInt(process.argv[3] ?? '1', 10)
const httpHost = process.argv[4] === 'ipv6' ? '::1' : '127.0.0.1'

const server = new Server({
  interval: Math.max(1, intervalSec) * 1000,
  http: true,
  udp: true,
  ws: false,
  stats: false,
  trustProxy: false
})
// Only IPv4 loopback: drop the udp6 socket before binding (the server then
// never emits its own 'listening', so readiness is tracked per socket below).
if (server.udp6) {
  server.udp6.close()
  server.udp6 = null
}
let pending = 2
function onBound () {
  pending -= 1
  if (pending === 0) console.log(`READY ${port}`)
}
server.http.once('listening', onBound)
server.udp4.once('listening', onBound)

server.on('error', err => {
  console.error(`tracker error: ${err.message}`)
  process.exit(1)
})
server.on('warning', err => {
  console.error(`tracker warning: ${err.message}`)
})
server.on('start', addr => { console.error(`announce start from ${addr}`) })

server.listen(port, { http: httpHost, udp: '127.0.0.1' })

// Exit when the parent goes away (its end of our stdin closes).
process.stdin.on('end', () => process.exit(0))
process.stdin.on('error', () => process.exit(0))
process.stdin.resume()
