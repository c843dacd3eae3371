// The page's one WebSocket: reconnects with backoff and says when it is live or not.
const MIN_DELAY_MS = 250;
const MAX_DELAY_MS = 4000;

export class LiveSocket {
  constructor({ tokenOf, onOpen, onFrame, onState }) {
    this.tokenOf = tokenOf;
    this.onOpen = onOpen;
    this.onFrame = onFrame;
    this.onState = onState;
    this.socket = null;
    this.retry = null;
    this.delayMs = MIN_DELAY_MS;
  }

  // Reconnect at once instead of at the end of the backoff (a token was just given).
  retryNow() {
    if (this.socket || !this.retry) return;
    clearTimeout(this.retry);
    this.connect();
  }

  start() {
    this.onState("connecting");
    this.connect();
  }

  send(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }

  connect() {
    const url = new URL("/ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const token = this.tokenOf();
    if (token) url.searchParams.set("token", token);
    const socket = new WebSocket(url);
    this.socket = socket;
    this.retry = null;
    socket.onopen = () => {
      this.delayMs = MIN_DELAY_MS;
      this.onState("live");
      this.onOpen();
    };
    socket.onmessage = (message) => this.onFrame(JSON.parse(message.data));
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.onState("reconnecting");
      this.retry = setTimeout(() => this.connect(), this.delayMs);
      this.delayMs = Math.min(this.delayMs * 2, MAX_DELAY_MS);
    };
  }
}
