declare global {
	namespace App {
		interface Locals {
			/** Set by hooks.server.ts from the `name` cookie; roomcast's use() takes `user.id` as the key's user. */
			user?: { id: string; name: string };
		}
	}
}

export {};
