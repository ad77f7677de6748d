import { RoomcastError } from '../errors.js';
export function toWireError(e) {
    const w = { code: e.code, message: e.message };
    if (e.closeCode !== undefined)
        w.closeCode = e.closeCode;
    return w;
}
export function fromWireError(w) {
    return new RoomcastError(w.code, w.message, w.closeCode === undefined ? {} : { closeCode: w.closeCode });
}
export function toWireState(info) {
    const { error, ...rest } = info;
    return error ? { ...rest, error: toWireError(error) } : rest;
}
export function fromWireState(info) {
    const { error, ...rest } = info;
    return error ? { ...rest, error: fromWireError(error) } : rest;
}
