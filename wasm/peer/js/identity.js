// The opt-in identity store: the node's 32-byte Ed25519 seed kept in
// IndexedDB under a key, like the C ABI's key store, so a page keeps its
// peer id across reloads. Failures (private mode, no IndexedDB) fall back
// to a fresh identity.

const DB = 'moss', STORE = 'identity';

function open() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE);
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function request(db, mode, fn) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const r = fn(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(r.result);
    tx.onerror = () => reject(tx.error);
  });
}

/** The seed stored under `key`, or null. */
export async function loadIdentity(key) {
  try {
    const db = await open();
    const v = await request(db, 'readonly', s => s.get(key));
    db.close();
    return v instanceof Uint8Array && v.length === 32 ? v : null;
  } catch { return null; }
}

/** Stores `seed` under `key`; false if it could not. */
export async function saveIdentity(key, seed) {
  try {
    const db = await open();
    await request(db, 'readwrite', s => s.put(seed, key));
    db.close();
    return true;
  } catch { return false; }
}
