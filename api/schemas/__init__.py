"""The API's request and response models (pydantic 2), one module per resource; the shared field
types and base models (``RequestModel``, ``ListResponse``) are in ``api.schemas.common``. Routers
import their models from here and keep only routes.

Request models derive from ``RequestModel`` (an unknown field is a 422); response models are
built from the domain objects by attribute (``Model.model_validate(obj, from_attributes=True)``).
"""
