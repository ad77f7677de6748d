import net from 'node:net';

/**
 * A TCP load balancer for tests: round-robin over the backends that accept
 * connections, trying the next one when a connect fails (a killed node).
 * HTTP and WebSocket pass through untouched.
 */
export class LoadBalancer {
	readonly backends: number[];
	#server = net.createServer((c) => this.#accept(c));
	#next = 0;
	#conns = new Set<net.Socket>();
	port = 0;

	constructor(backends: number[]) {
		this.backends = backends;
	}

	async listen(): Promise<number> {
		await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
		this.port = (this.#server.address() as net.AddressInfo).port;
		return this.port;
	}

	#accept(client: net.Socket, tried = 0): void {
		if (tried >= this.backends.length) {
			client.destroy();
			return;
		}
		const port = this.backends[this.#next++ % this.backends.length]!;
		const up = net.connect(port, '127.0.0.1');
		const fail = () => {
			up.destroy();
			this.#accept(client, tried + 1);
		};
		up.once('error', fail);
		up.once('connect', () => {
			up.off('error', fail);
			this.#conns.add(client).add(up);
			client.pipe(up).pipe(client);
			const done = () => {
				client.destroy();
				up.destroy();
				this.#conns.delete(client);
				this.#conns.delete(up);
			};
			up.on('error', done).on('close', done);
			client.on('error', done).on('close', done);
		});
	}

	async close(): Promise<void> {
		for (const c of this.#conns) c.destroy();
		await new Promise<void>((r) => this.#server.close(() => r()));
	}
}
