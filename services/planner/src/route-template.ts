import type { RequestHandler, Response } from 'express';

/**
 * Remembers the route template (`/v1/calls/:id`) when express matches it. Read later it would be
 * wrong: by the time an error reaches the error handler, the router has reset `req.baseUrl`
 * (`/v1/calls` would read `/calls`). Metrics and spans label requests with it, never with the path,
 * which holds ids.
 */
export function captureRouteTemplate(): RequestHandler {
  return (req, res, next) => {
    let matched: unknown;
    Object.defineProperty(req, 'route', {
      configurable: true,
      enumerable: true,
      get: () => matched,
      set: (value: { path?: unknown } | undefined) => {
        matched = value;
        if (typeof value?.path === 'string') res.locals.routeTemplate = req.baseUrl + value.path;
      },
    });
    next();
  };
}

/** The matched route template, or `undefined` when no route matched. */
export function routeTemplateOf(res: Response): string | undefined {
  return res.locals.routeTemplate as string | undefined;
}
