import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import { callerGone } from '../service/index.js';

declare module 'fastify' {
  interface FastifyReply {
    /**
     * Aborts when the client goes before this response was sent whole: the reply is the
     * request's CallerSignal for the inference service, which reads it only for a request that
     * waits for a batch; the AbortController is made then (`replySignal`).
     */
    readonly signal: AbortSignal;
  }
}

const replyKey = Symbol('normserve.reply');
const controllerKey = Symbol('normserve.callerController');
type Linked = ServerResponse & { [replyKey]?: FastifyReply };
type Signalling = FastifyReply & { [controllerKey]?: AbortController };

/** Lets a response find its reply (for `replyOf`, when its client leaves). */
export function linkReply(reply: FastifyReply): void {
  (reply.raw as Linked)[replyKey] = reply;
}

/** The reply of a response (linked by linkReply when its request reached a route). */
export const replyOf = (response: ServerResponse): FastifyReply | undefined =>
  (response as Linked)[replyKey];

/**
 * FastifyReply's `signal` (a decorateReply getter): one AbortController per reply, made on first
 * read, aborted at once when the client has already gone (its request was marked, or its
 * connection is closed).
 */
export function replySignal(this: FastifyReply): AbortSignal {
  const reply = this as Signalling;
  let controller = reply[controllerKey];
  if (controller === undefined) {
    controller = new AbortController();
    reply[controllerKey] = controller;
    if (reply.request.unanswered || reply.request.raw.socket.destroyed)
      controller.abort(callerGone());
  }
  return controller.signal;
}

/** The reply's client left: its signal, if made, aborts (a request waiting for a batch leaves). */
export function abortReply(reply: FastifyReply): void {
  const controller = (reply as Signalling)[controllerKey];
  if (controller !== undefined && !controller.signal.aborted) controller.abort(callerGone());
}
